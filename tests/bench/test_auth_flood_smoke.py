"""bench/auth_flood.py runs end to end (a short flood): both phases are timed, the flood is
answered 401 then 429, and the JSON has the documented shape. Speed is judged from full runs only."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_flood_run_writes_the_documented_json(tmp_path):
    out = tmp_path / "flood.json"
    env = {k: v for k, v in os.environ.items() if k != "PIXELSERVE_AUTH_FAIL_BURST"}  # the shipped limit
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "auth_flood.py"), "--seconds", "4", "--alone", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| alone |" in done.stdout and "| under flood |" in done.stdout
    data = json.loads(out.read_text())
    assert data["rows"]["alone"]["n"] == 2 and data["rows"]["under flood"]["n"] >= 1
    assert data["rows"]["alone"]["p50_ms"] > 0 and data["p50_ratio"] > 0
    assert set(data["flood_statuses"]) <= {"401", "429"} and int(data["flood_statuses"].get("429", 0)) > 0
