"""Throughput of the Ray Serve engine with 1 and 2 CPU replicas on the tiny SD model, next to plain
diffusers in the same run.

Rows (tiny-sd, 64 px, STEPS steps, one image per request, no cross-request batching so that only
replica scaling shows):
- plain diffusers, 1 thread: the pipeline called in a loop in one process limited to one core
  (what one replica's core can do; the ideal per-replica rate).
- plain diffusers, 2 threads: the same loop letting torch use both cores (one process, no Ray).
- Ray Serve, 1 replica / 2 replicas (num_cpus=1 each, so Ray gives each one core): REQUESTS
  requests sent CONCURRENCY at a time through a DeploymentHandle from a driver that loads no model.

Plain rows run in their own processes. Prints a table, writes bench/results/scale-cpu-<date>.json.

    .venv/bin/python bench/scale.py               # ~2 minutes on 2 cores
    .venv/bin/python bench/scale.py --requests 16  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZE, STEPS = 64, 20


def plain(cache: Path, threads: int, requests: int) -> float:
    """Images/s of plain diffusers in a fresh process limited to ``threads`` torch threads."""
    code = f"""
import time, torch
torch.set_num_threads({threads})
from diffusers import DiffusionPipeline
from pixelserve.engine.demo import tiny
pipe = DiffusionPipeline.from_pretrained(tiny.ensure_tiny_model("sd", {str(cache)!r}), local_files_only=True)
pipe.set_progress_bar_config(disable=True)
def one(i):
    with torch.inference_mode():
        pipe("a cat", width={SIZE}, height={SIZE}, num_inference_steps={STEPS}, generator=torch.Generator().manual_seed(i))
one(0)
t = time.perf_counter()
for i in range({requests}):
    one(i)
print({requests} / (time.perf_counter() - t))
"""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


async def ray_rate(cache: Path, replicas: int, requests: int, concurrency: int) -> tuple[float, int]:
    """Images/s through the Ray engine with ``replicas`` replicas; and how many replicas served."""
    from ray import serve

    from pixelserve.core.model_config import demo_config
    from pixelserve.core.request import GenerationRequest
    from pixelserve.engine.runners.ray_serve import RayEngine, ReplicaOptions

    engine = RayEngine({"tiny-sd": demo_config().models["tiny-sd"]}, cache, app_prefix=f"bench{replicas}",
                       replicas=ReplicaOptions(min_replicas=replicas, max_replicas=replicas, num_cpus=1))
    await engine.start()
    await engine.wait_ready()
    if not engine.health().ready:
        raise RuntimeError(engine.health().loading_error)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with gate:
            return await engine.submit(f"b{replicas}-{i}", GenerationRequest(
                model="tiny-sd", prompt="a cat", width=SIZE, height=SIZE, steps=STEPS, seeds=(i,)))

    await asyncio.gather(*(one(-i - 1) for i in range(replicas * 2)))  # warm every replica
    t = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(requests)))
    rate = requests / (time.perf_counter() - t)
    serve.delete(engine.app_name("tiny-sd"))
    return rate, len({r.worker for r in results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    import ray

    cache = Path(tempfile.mkdtemp(prefix="pixelserve-bench-scale-"))
    from pixelserve.engine.demo import tiny

    tiny.ensure_tiny_model("sd", cache / "tiny")
    loop = min(args.requests, 16)  # the plain rates settle quickly; a loaded machine makes them slow
    rows = [("plain diffusers, 1 thread", plain(cache / "tiny", 1, loop), None),
            ("plain diffusers, 2 threads", plain(cache / "tiny", 2, loop), None)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for n in (1, 2):
            rate, served = asyncio.run(ray_rate(cache, n, args.requests, args.concurrency))
            rows.append((f"Ray Serve, {n} replica{'s' if n > 1 else ''}", rate, served))
    finally:
        ray.shutdown()

    base = rows[2][1]
    print(f"\ntiny-sd {SIZE}x{SIZE}, {STEPS} steps, {args.requests} requests, {args.concurrency} in flight, "
          f"{os.cpu_count()} CPUs")
    print(f"{'':30} {'img/s':>8} {'vs 1 replica':>13} {'replicas used':>14}")
    for name, rate, served in rows:
        print(f"{name:30} {rate:8.2f} {rate / base:12.2f}x {served if served else '-':>14}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-cpu-{dt.date.today()}.json"
    out.write_text(json.dumps({"device": "cpu", "cpus": os.cpu_count(), "date": str(dt.date.today()),
                               "size": SIZE, "steps": STEPS, "requests": args.requests,
                               "rows": [{"workload": n, "img_per_s": r, "replicas_used": s} for n, r, s in rows]},
                              indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
