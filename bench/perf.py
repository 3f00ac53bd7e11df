"""pixelserve vs plain diffusers, every row of the performance issue this machine can run, in ONE run.

Prints a table (median of >= 5 runs after a warm-up, p50/p99, images/s, peak memory) and writes
``bench/results/<cpu|gpu>-<date>.json`` as
``{"device", "date", "rows": [{"workload", "unit", "plain", "pixelserve", ...}]}``.

CPU rows (bench/perf_cpu.py) use the tiny random-weight demo models (speed does not depend on
weight values): cpu_server_overhead, cpu_batching, cpu_compile, restart_to_ready.
GPU rows (bench/perf_gpu.py) build full-size SD 1.5 and SDXL architectures with random weights from
the configs shipped in pixelserve/engine/weights/configs (no hub): sdxl_b1_latency, sdxl_throughput,
sd15_b1_latency, sd15_throughput. They run where CUDA is visible; elsewhere they are listed as
not measured. ``--gpu-tiny`` runs the same GPU code on the tiny models (any device, CPU included),
a smoke test of that path: its numbers are not the GPU rows' figures.
The preview row (bench/perf_previews.py: preview_overhead) runs on whatever device there is.
``cpu_fullsize`` (bench/perf_fullsize.py: cpu_fullsize_b1_latency, cpu_fullsize_throughput) runs the GPU
rows' code on a full-size SD 1.5 at 256 px 4 steps on a CPU (minutes; not in ``--quick``).

Every measurement runs in its own process (bench/perf_common.run_part).

    .venv/bin/python bench/perf.py                           # every row this machine can run
    .venv/bin/python bench/perf.py --rows cpu_server_overhead # only the rows named (comma list)
    .venv/bin/python bench/perf.py --quick                    # smoke run (tests/bench): small rows, 1 repeat
    .venv/bin/python bench/perf.py --rows preview_overhead    # live previews on vs off
    .venv/bin/python bench/perf.py --rows cpu_fullsize --cache /tmp/bench  # full-size SD 1.5 on this CPU
    .venv/bin/python bench/perf.py --rows sd15_b1_latency --gpu-tiny --quick   # GPU path smoke on CPU
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import perf_cpu, perf_fullsize, perf_gpu, perf_previews  # noqa: E402
from bench.perf_common import RESULTS, pct, run_part, running_server, tiny_folder  # noqa: E402,F401  (bench/load.py)

PARTS = {**perf_cpu.PARTS, **perf_gpu.PARTS, **perf_previews.PARTS}
CPU_ROWS = ("cpu_server_overhead", "cpu_batching", "cpu_compile", "restart_to_ready")
GPU_ROWS = ("sdxl_b1_latency", "sdxl_throughput", "sd15_b1_latency", "sd15_throughput")
ANY_ROWS = ("preview_overhead",)  # on whatever device there is
FULLSIZE_ROWS = perf_fullsize.ROWS  # on a CPU only; "cpu_fullsize" names both
ALL_ROWS = CPU_ROWS + FULLSIZE_ROWS + GPU_ROWS + ANY_ROWS


def collect(names: list[str], cache: Path, repeat: int, quick: bool, cuda: bool, gpu_tiny: bool,
            fp8: bool = True, compile_mode: str | None = None) -> list[dict]:
    rows: list[dict] = []
    done: set = set()
    fullsize = [n for n in names if n in FULLSIZE_ROWS]
    for name in names:
        if name in FULLSIZE_ROWS:
            if (quick and not gpu_tiny) or name != fullsize[0]:
                continue  # minutes per row: not in the smoke run; both rows in one go
            if cuda and not gpu_tiny:
                rows += [{"workload": n, "unit": "s" if "latency" in n else "img/s", "plain": None, "pixelserve": None,
                          "note": "not measured: a CPU row (the GPU rows measure full-size models here)"}
                         for n in fullsize]
                continue
            rows += perf_fullsize.rows(cache, fullsize, tiny=gpu_tiny,
                                       repeat=1 if quick else perf_fullsize.REPEAT)
        elif name in CPU_ROWS:
            builder = perf_cpu.ROWS[name]
            if quick and builder is perf_cpu.rows_compile:
                continue  # compiling takes minutes: not in the smoke run
            if builder in done:
                continue
            done.add(builder)
            rows += [r for r in builder(run_part, cache, repeat, quick) if r["workload"] in names]
        elif name == "preview_overhead":
            rows += perf_previews.row(run_part, cache, repeat, quick, cuda)
        elif cuda or gpu_tiny:
            rows += perf_gpu.row(name, run_part, cache, repeat, quick, tiny=gpu_tiny, fp8=fp8,
                                 compile_mode=compile_mode)
        else:
            rows.append({"workload": name, "unit": "s" if "latency" in name else "img/s", "plain": None,
                         "pixelserve": None, "note": "not measured: no CUDA device on this machine"})
    return rows


def print_table(rows: list[dict], device: str, repeat: int) -> None:
    fullsize = any(r["workload"] in FULLSIZE_ROWS for r in rows)
    print(f"\npixelserve vs baseline on {device}, median of {repeat} runs after a warm-up"
          + (f" (cpu_fullsize rows: {perf_fullsize.REPEAT})" if fullsize else "") + "\n")
    print(f"| {'workload':<20} | {'unit':<5} | {'baseline':>9} | {'pixelserve':>10} | {'ratio':>6} | target")
    print(f"|{'-' * 22}|{'-' * 7}|{'-' * 11}|{'-' * 12}|{'-' * 8}|{'-' * 30}")
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        print(f"| {r['workload']:<20} | {r['unit']:<5} | {fmt(r['plain']):>9} | {fmt(r['pixelserve']):>10} | "
              f"{ratio:>6} | {r.get('target', '')}")
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("workload", "unit", "plain", "pixelserve", "target")}
        if extra:
            print(f"  {r['workload']}: {json.dumps(extra)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", help=f"comma list of workloads (default: all): {', '.join(ALL_ROWS)} "
                                   "(cpu_fullsize: both cpu_fullsize rows)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, small rows, no compile rows")
    ap.add_argument("--gpu-tiny", action="store_true",
                    help="GPU and cpu_fullsize rows on the tiny models, on whatever device there is (a smoke test "
                         "of that code)")
    ap.add_argument("--no-fp8", action="store_true",
                    help="sdxl_b1_latency without its FP8 figure (one compile less; bench/gpu/run.sh takes it last)")
    ap.add_argument("--compile-mode", choices=("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                    help="GPU rows: the engine's torch.compile mode (PIXELSERVE_COMPILE_MODE; default: torch's)")
    ap.add_argument("--out", type=Path, help="JSON path (default: bench/results/<cpu|gpu>-<date>.json; "
                                              "--quick and --gpu-tiny write only when given)")
    ap.add_argument("--cache", type=Path, help="keep built models here between runs (default: a temporary folder)")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--kw", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.part:
        print(json.dumps(PARTS[a.part](Path(a.cache), **json.loads(a.kw))))
        return
    # --quick without --rows leaves the preview row out: its own process start would add more to the
    # smoke run (tests/bench) than the row is worth there; tests/bench/test_preview_bench.py runs its part.
    default = CPU_ROWS + GPU_ROWS if a.quick else ALL_ROWS
    names = [n.strip() for n in (a.rows or ",".join(default)).split(",") if n.strip()]
    names = [x for n in names for x in (FULLSIZE_ROWS if n == "cpu_fullsize" else (n,))]
    unknown = sorted(set(names) - set(ALL_ROWS))
    if unknown:
        ap.error(f"unknown rows: {', '.join(unknown)}")
    repeat = 1 if a.quick else max(5, a.repeat)
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else \
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    if a.cache is not None:
        a.cache.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(a.cache) if a.cache is not None else tempfile.TemporaryDirectory() as cache:
        rows = collect(names, Path(cache), repeat, a.quick, cuda, a.gpu_tiny, fp8=not a.no_fp8,
                       compile_mode=a.compile_mode)
    print_table(rows, device, repeat)
    out = a.out
    if out is None and not a.quick and not a.gpu_tiny:
        out = RESULTS / f"{'gpu' if cuda else 'cpu'}-{dt.date.today().isoformat()}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        data = {"device": device, "date": dt.date.today().isoformat(), "rows": rows}
        if out.exists() and a.rows:  # a run of some rows updates those rows of the day's file
            old = json.loads(out.read_text())
            if old.get("device") == device:
                kept = [r for r in old.get("rows", []) if r["workload"] not in {r["workload"] for r in rows}]
                data["rows"] = sorted(kept + rows, key=lambda r: ALL_ROWS.index(r["workload"]))
        out.write_text(json.dumps(data, indent=2))
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
