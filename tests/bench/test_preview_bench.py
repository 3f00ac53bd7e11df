"""bench/perf_previews.py (the preview_overhead row of bench/perf.py): its part runs and measures what it
says, in this process (the --quick smoke run leaves the row out to stay short). Speed is judged from bench
runs, never asserted here."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench import perf_previews  # noqa: E402


def test_the_preview_row_times_jobs_with_and_without_previews(tiny_cache):
    got = perf_previews.part_preview_jobs(tiny_cache / "tiny", size=64, steps=5, repeat=1)
    assert got["off_s"] > 0 and got["on_s"] > 0 and len(got["off_runs"]) == len(got["on_runs"]) == 1
    assert got["previews_per_job"] == 1 and got["preview_px"] == (64, 64)  # step 5 of 5: one preview per job

    row, = perf_previews.row(lambda name, cache, **kw: got, tiny_cache, repeat=1, quick=True, cuda=False)
    assert row["workload"] == "preview_overhead" and row["unit"] == "s"
    assert row["plain"] == got["off_s"] and row["pixelserve"] == got["on_s"]
    assert set(row["by_shape"]) == {"tiny-sd 64px 10 steps"}
