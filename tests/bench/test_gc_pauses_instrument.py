"""bench/gc_pauses.py's instrument: the sitecustomize hook it puts on a process's PYTHONPATH logs
every collection of that process, and only the full ones inside the timed rounds are counted.
(The whole bench starts two servers; its figures come from full runs.)"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.gc_pauses import SITECUSTOMIZE, pauses  # noqa: E402


def test_the_hook_logs_each_collection_of_another_process(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "gc.log"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GC_PAUSE_LOG": str(log)}
    before = time.time()
    subprocess.run([sys.executable, "-c", "import gc; gc.collect(0); gc.collect(); gc.collect()"], env=env, check=True)
    after = time.time()
    got = pauses(log, [(before, after)])
    assert got["full_collections"] >= 2 and got["pause_max_ms"] >= 0
    assert pauses(log, [(after + 10, after + 20)])["full_collections"] == 0  # outside every round: not counted


def test_only_full_collections_inside_a_round_count(tmp_path):
    log = tmp_path / "gc.log"
    log.write_text("100.0 2 300.0\n105.0 0 0.1\n105.5 2 12.5\n200.0 2 999.0\n")
    assert pauses(log, [(99.0, 101.0), (104.0, 106.0)]) == {"full_collections": 2, "pause_total_ms": 312.5,
                                                             "pause_max_ms": 300.0}
