"""bench/png_encode.py runs (one repeat): it checks inside that fast_png with zlib-ng writes the same
bytes as with the standard zlib, and prints a row per image. Speed is judged from its full runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_png_bench_runs_and_prints_every_row():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "png_encode.py"), "--repeat", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| noise") or line.startswith("| smooth")]
    assert len(rows) == 4 and all(line.count("|") == 7 for line in rows)
