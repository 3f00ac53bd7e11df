"""bench/perf.py runs end to end (short runs): every path it times works and the JSON has the
documented shape. Speed itself is judged from full bench runs, never asserted here."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def perf(*args, timeout=900):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "perf.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_quick_bench_run_writes_the_documented_json(tmp_path):
    out = tmp_path / "perf.json"
    stdout = perf("--quick", "--out", str(out))
    assert "| cpu_batching" in stdout and "| cpu_server_overhead" in stdout
    data = json.loads(out.read_text())
    assert set(data) == {"device", "date", "rows"}
    rows = {r["workload"]: r for r in data["rows"]}
    for name in ("cpu_server_overhead", "cpu_batching"):
        assert rows[name]["unit"] == "img/s"
        assert rows[name]["plain"] > 0 and rows[name]["pixelserve"] > 0
    overhead = rows["cpu_server_overhead"]
    assert {"added_p50_ms", "p50_ms", "peak_mib"} <= set(overhead)
    assert overhead["peak_mib"]["plain"] > 0 and overhead["peak_mib"]["pixelserve"] > 0
    stages = overhead["one_client_stages_p50_ms"]  # read from the server's Server-Timing headers
    assert set(stages) == {"auth", "admit", "engine", "store", "finish", "app", "client"}
    assert 0 < stages["engine"] < stages["app"] <= stages["client"]
    for name in ("sdxl_b1_latency", "sd15_throughput"):  # GPU rows: measured only where CUDA is
        assert name in rows


def test_gpu_rows_code_runs_on_the_tiny_models(tmp_path):
    """The GPU rows' code (random-weight folder, plain fp16 pipeline, engine with fused QKV and
    batching) on the tiny models, on whatever device there is: it must not first crash on a GPU."""
    out = tmp_path / "gpu.json"
    stdout = perf("--rows", "sd15_b1_latency,sdxl_throughput", "--gpu-tiny", "--quick", "--no-fp8", "--out", str(out))
    assert "| sd15_b1_latency" in stdout and "| sdxl_throughput" in stdout
    rows = {r["workload"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"sd15_b1_latency", "sdxl_throughput"}
    assert rows["sd15_b1_latency"]["unit"] == "s" and rows["sdxl_throughput"]["unit"] == "img/s"
    for r in rows.values():
        assert r["plain"] > 0 and r["pixelserve"] > 0 and "TINY" in r["note"]


def test_unknown_rows_are_refused():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "perf.py"), "--rows", "cpu_nope"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0 and "unknown rows: cpu_nope" in done.stderr


def test_cpu_fullsize_rows_code_runs_on_the_tiny_models(tmp_path):
    """The cpu_fullsize rows' code (plain batch vs concurrent requests through the engine with this
    device's default optimisations, page faults counted) on the tiny models."""
    out = tmp_path / "fullsize.json"
    stdout = perf("--rows", "cpu_fullsize", "--gpu-tiny", "--quick", "--out", str(out))
    assert "| cpu_fullsize_b1_latency" in stdout and "| cpu_fullsize_throughput" in stdout
    rows = {r["workload"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"cpu_fullsize_b1_latency", "cpu_fullsize_throughput"}
    assert rows["cpu_fullsize_b1_latency"]["unit"] == "s" and rows["cpu_fullsize_throughput"]["unit"] == "img/s"
    for r in rows.values():
        assert r["plain"] > 0 and r["pixelserve"] > 0 and "TINY" in r["note"]
        assert set(r["page_faults_per_image"]) == {"plain", "pixelserve"}
