"""bench/perf.py runs end to end (a short run): every path it times works and the JSON has the
documented shape. Speed itself is judged from full bench runs, never asserted here."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_run_writes_the_documented_json(tmp_path):
    out = tmp_path / "perf.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "perf.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| cpu_batching" in done.stdout and "| cpu_server_overhead" in done.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"device", "date", "rows"}
    rows = {r["workload"]: r for r in data["rows"]}
    for name in ("cpu_server_overhead", "cpu_batching"):
        assert rows[name]["unit"] == "img/s"
        assert rows[name]["plain"] > 0 and rows[name]["pixelserve"] > 0
    for name in ("sdxl_b1_latency", "sd15_throughput"):  # GPU rows: measured only where CUDA is
        assert name in rows
