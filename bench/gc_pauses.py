"""Garbage-collector pauses under load: the server with and without PIXELSERVE_GC_FREEZE, and plain diffusers.

CPython's full (generation-2) collection walks every tracked object with the GIL held: the event
loop and the device thread both stop. With torch, diffusers, the pipelines and the web stack
loaded that is 500,000+ objects. engine/weights/gc_freeze.py freezes them out of those passes once the engine
is ready. This runs the same bursts of concurrent Karlo t2i requests (the cpu_server_overhead
row's requests) against a server with the freeze off, then on, and logs every collection inside
the server through a ``sitecustomize`` module put on the server's PYTHONPATH (the bench's own
instrument, nothing in pixelserve). Plain diffusers, for reference, makes the same 32 images
per round in batches from one script, with the same log.

    .venv/bin/python bench/gc_pauses.py [--rounds 6] [--requests 32] [--batch-size 8] [--out FILE]

Prints, per side: full collections during the rounds, their total and longest pause, img/s and
the request latencies (p50, p99, max); writes the same to JSON (default
bench/results/gc-pauses-cpu-<date>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.perf_common import RESULTS, p50, pct, running_server, tiny_folder  # noqa: E402
from bench.perf_cpu import HTTP_SIZE, STEPS, karlo_body  # noqa: E402

#: Loaded first by every Python process started with this folder on PYTHONPATH: logs each
#: collection (wall-clock end time, generation, pause ms) to the file named by GC_PAUSE_LOG.
SITECUSTOMIZE = '''
import gc, os, time
_log = open(os.environ["GC_PAUSE_LOG"], "a", buffering=1)
_started = [0.0]
def _on_gc(phase, info):
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _log.write(f"{time.time():.4f} {info['generation']} {(time.perf_counter() - _started[0]) * 1e3:.3f}\\n")
gc.callbacks.append(_on_gc)
'''


def pauses(log: Path, windows: list[tuple[float, float]]) -> dict:
    """Full collections whose end fell inside one of the rounds."""
    full = []
    for line in log.read_text().splitlines():
        at, gen, ms = line.split()
        if int(gen) == 2 and any(a <= float(at) <= b for a, b in windows):
            full.append(float(ms))
    return {"full_collections": len(full), "pause_total_ms": sum(full), "pause_max_ms": max(full, default=0.0)}


def server_side(cache: Path, freeze: bool, rounds: int, n: int, batch: int, hook: Path, log: Path) -> dict:
    env = {"PIXELSERVE_GC_FREEZE": str(freeze).lower(), "PIXELSERVE_MAX_BATCH_SIZE": str(batch),
           "PIXELSERVE_MAX_QUEUE": str(4 * n), "PIXELSERVE_START_DEADLINE_SECONDS": "0",
           "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]), "GC_PAUSE_LOG": str(log)}
    with running_server(cache, env) as (base, key, _):
        async def go():
            headers = {"Authorization": f"KakaoAK {key}", "Content-Type": "application/json"}
            bodies = [json.dumps(karlo_body(i)).encode() for i in range(n)]
            url = "/v2/inference/karlo/t2i"
            limits = httpx.Limits(max_connections=n, keepalive_expiry=3)  # under uvicorn's 5 s keep-alive
            async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
                assert (await client.post(url, content=bodies[0], headers=headers)).status_code == 200
                latencies, walls, windows = [], [], []
                for _ in range(rounds):
                    async def one(i):
                        t = time.perf_counter()
                        answer = await client.post(url, content=bodies[i], headers=headers)
                        assert answer.status_code == 200, answer.text[:300]
                        latencies.append(time.perf_counter() - t)

                    start, t = time.time(), time.perf_counter()
                    await asyncio.gather(*(one(i) for i in range(n)))
                    walls.append(time.perf_counter() - t)
                    windows.append((start, time.time()))
                return latencies, walls, windows

        latencies, walls, windows = asyncio.run(go())
    return {"img_s": statistics.median(n / w for w in walls), "p50_ms": p50(latencies) * 1e3,
            "p99_ms": pct(latencies, 0.99) * 1e3, "max_ms": max(latencies) * 1e3, **pauses(log, windows)}


def plain_side(cache: Path, rounds: int, n: int, batch: int) -> dict:
    """In its own process (the hook logs it): plain diffusers, ``n`` images a round in batches."""
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_folder(cache), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def call(seed: int, count: int):
        with torch.inference_mode():
            return pipe(["a cat"] * count, width=HTTP_SIZE, height=HTTP_SIZE, num_inference_steps=STEPS,
                        generator=[torch.Generator().manual_seed(seed + k) for k in range(count)]).images

    call(0, 1)
    walls, windows, calls = [], [], []
    for r in range(rounds):
        start, t = time.time(), time.perf_counter()
        for b in range(0, n, batch):
            c = time.perf_counter()
            call(r * n + b, min(batch, n - b))
            calls.append(time.perf_counter() - c)
        walls.append(time.perf_counter() - t)
        windows.append((start, time.time()))
    return {"img_s": statistics.median(n / w for w in walls), "call_p50_ms": p50(calls) * 1e3,
            "call_max_ms": max(calls) * 1e3, **pauses(Path(os.environ["GC_PAUSE_LOG"]), windows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS / f"gc-pauses-cpu-{dt.date.today().isoformat()}.json")
    ap.add_argument("--plain-part", type=Path, help=argparse.SUPPRESS)  # internal: the plain side's process
    a = ap.parse_args()
    if a.plain_part:
        print(json.dumps(plain_side(a.plain_part, a.rounds, a.requests, a.batch_size)))
        return
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        cache, hook = work / "cache", work / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        tiny_folder(cache)
        sides = {}
        log = work / "plain.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
               "GC_PAUSE_LOG": str(log)}
        out = subprocess.run([sys.executable, __file__, "--plain-part", str(cache), "--rounds", str(a.rounds),
                              "--requests", str(a.requests), "--batch-size", str(a.batch_size)],
                             env=env, capture_output=True, text=True, check=True).stdout
        sides["plain diffusers (one script)"] = json.loads(out.strip().splitlines()[-1])
        for freeze in (False, True):
            name = f"server, gc_freeze {'on' if freeze else 'off'}"
            sides[name] = server_side(cache, freeze, a.rounds, a.requests, a.batch_size, hook, work / f"{freeze}.log")

    print(f"\n{a.rounds} rounds of {a.requests} concurrent Karlo t2i requests ({HTTP_SIZE} px, {STEPS} steps, "
          f"batch {a.batch_size}); plain diffusers makes the same images in batches from one script\n")
    print(f"| side | full collections | pause total ms | longest pause ms | img/s | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in sides.items():
        lat = [s.get("p50_ms"), s.get("p99_ms"), s.get("max_ms")]
        print(f"| {name} | {s['full_collections']} | {s['pause_total_ms']:.1f} | {s['pause_max_ms']:.1f} | "
              f"{s['img_s']:.2f} | " + " | ".join("-" if v is None else f"{v:.0f}" for v in lat) + " |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"device": "cpu", "date": dt.date.today().isoformat(), "rounds": a.rounds,
                                 "requests": a.requests, "batch_size": a.batch_size, "sides": sides}, indent=1))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
