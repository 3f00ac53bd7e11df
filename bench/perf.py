"""pixelserve vs plain diffusers, every row of the performance issue this machine can run, in ONE run.

Prints a table (median of >= 5 runs after a warm-up, p50/p99, images/s, peak memory) and writes
``bench/results/<device>-<date>.json`` as
``{"device", "date", "rows": [{"workload", "unit", "plain", "pixelserve", ...}]}``.

CPU rows use the tiny random-weight demo models (speed does not depend on weight values):
- ``cpu_server_overhead``: 32 concurrent HTTP clients against a real server vs the same jobs
  submitted straight to the engine (baseline: direct engine), img/s and added p50.
- ``cpu_batching``: 16 concurrent identical-shape requests through the engine with dynamic
  batching vs plain diffusers serving them one at a time, img/s.
- ``cpu_compile``: one request, torch.compile'd UNet + VAE decoder vs plain diffusers eager, s;
  the two outputs are compared (max abs pixel difference reported).
- ``restart_to_ready``: engine start to ready with compile, cold cache vs warm cache, s.
GPU rows (SDXL / SD 1.5 full-size architectures with random weights) run only where CUDA is
visible; on this CPU-only machine they are listed as not measured.

Every measurement runs in its own process: on CPU, torch work from two threads of one process
slows both about 3x on tiny models, which would bias whichever path runs second.

    .venv/bin/python bench/perf.py            # full run (several minutes on 2 cores)
    .venv/bin/python bench/perf.py --quick    # smoke run (tests/bench): 1 repeat, no compile rows
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZE, STEPS = 64, 10  # the tiny models at 64 px: pixelserve's own cost is what shows


# -- helpers ------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def tiny_folder(cache: Path, family: str = "sd") -> Path:
    from pixelserve.engine import tiny

    return tiny.ensure_tiny_model(family, cache)


def plain_pipe(cache: Path):
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_folder(cache), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def call(seed: int = 1):
        with torch.inference_mode():
            return pipe("a cat", width=SIZE, height=SIZE, num_inference_steps=STEPS,
                        generator=torch.Generator().manual_seed(seed)).images[0]

    return call


async def started_engine(cache: Path, **kw):
    from pixelserve.core.models import demo_config
    from pixelserve.engine.local import LocalEngine

    engine = LocalEngine(demo_config().models, cache, **kw)
    await engine.start()
    await engine.wait_ready()
    return engine


@contextlib.contextmanager
def running_server(cache: Path, env: dict[str, str], setup=None):
    """``pixelserve serve`` on a free 127.0.0.1 port over a copy of the tiny-model cache.

    ``setup(env)``, when given, runs before the server starts (e.g. more ``pixelserve keys`` commands)."""
    import shutil
    import socket
    import urllib.request

    with tempfile.TemporaryDirectory() as data:
        shutil.copytree(cache, Path(data) / "cache", ignore=shutil.ignore_patterns("inductor", "*.png"))
        env = {**os.environ, **env, "PIXELSERVE_DATA_DIR": data}
        bin_dir = Path(sys.executable).parent
        key = subprocess.run([bin_dir / "pixelserve", "keys", "create", "--name", "bench"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        if setup is not None:
            setup(env)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([bin_dir / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    with urllib.request.urlopen(base + "/health/ready", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not become ready")
                time.sleep(0.2)
            yield base, key, proc
        finally:
            proc.terminate()
            proc.wait(60)


def request(seed: int = 1, prompt: str = "a cat"):
    from pixelserve.core.request import GenerationRequest

    return GenerationRequest(model="tiny-sd", prompt=prompt, width=SIZE, height=SIZE, steps=STEPS,
                             guidance_scale=7.5, seeds=(seed,))


# -- parts, each run in its own process ----------------------------------------------------------
def part_plain_one_at_a_time(cache: Path, n: int, repeat: int) -> dict:
    """Plain diffusers serving ``n`` requests one after another (the batching baseline)."""
    call = plain_pipe(cache)
    call()
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(n):
            call(i)
        rates.append(n / (time.perf_counter() - t))
    return {"img_s": statistics.median(rates), "runs": rates, "peak_mib": peak_rss_mib()}


def part_plain_latency(cache: Path, repeat: int) -> dict:
    call = plain_pipe(cache)
    call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        image = call(7)
        times.append(time.perf_counter() - t)
    path = cache / "plain-eager.png"
    image.save(path)
    return {"s": statistics.median(times), "p99": pct(times, 0.99), "image": str(path), "peak_mib": peak_rss_mib()}


def part_engine_concurrent(cache: Path, n: int, repeat: int, batch: int) -> dict:
    """``n`` identical-shape requests submitted at once to the engine (dynamic batching on/off)."""

    async def go():
        from pixelserve.settings import Settings

        # The server's own batching settings (delay), so the direct engine batches as the server does.
        engine = await started_engine(cache, max_batch_size=batch, max_batch_delay_ms=Settings().max_batch_delay_ms)
        try:
            await engine.submit("warm", request())
            rates, lat = [], []
            for r in range(repeat):
                async def one(i):
                    t = time.perf_counter()
                    await engine.submit(f"r{r}-{i}", request(i, f"a cat number {i}"))
                    lat.append(time.perf_counter() - t)

                t = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(n)))
                rates.append(n / (time.perf_counter() - t))
            return {"img_s": statistics.median(rates), "runs": rates, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                    "peak_mib": peak_rss_mib()}
        finally:
            await engine.stop()

    return asyncio.run(go())


def part_engine_compiled(cache: Path, repeat: int) -> dict:
    async def go():
        t0 = time.perf_counter()
        engine = await started_engine(cache, compile=True)
        ready = time.perf_counter() - t0
        try:
            await engine.submit("warm", request(7))
            times = []
            for i in range(repeat):
                t = time.perf_counter()
                res = await engine.submit(f"c{i}", request(7))
                times.append(time.perf_counter() - t)
            path = cache / "compiled.png"
            res.images[0].save(path)
            return {"s": statistics.median(times), "p99": pct(times, 0.99), "ready_s": ready, "image": str(path),
                    "peak_mib": peak_rss_mib()}
        finally:
            await engine.stop()

    return asyncio.run(go())


def part_http(cache: Path, n: int, repeat: int, batch: int) -> dict:
    """``n`` concurrent Karlo-format HTTP clients against a real uvicorn server on 127.0.0.1."""
    import httpx

    async def go(base: str, key: str):
        body = {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": STEPS,
                "return_type": "base64_string", "image_format": "png"}
        headers = {"Authorization": f"KakaoAK {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=httpx.Limits(max_connections=n)) as c:
            r = await c.post("/v2/inference/karlo/t2i", json={**body, "seed": [0]}, headers=headers)
            assert r.status_code == 200, r.text
            rates, lat = [], []
            for _ in range(repeat):
                async def one(i):
                    t = time.perf_counter()
                    r = await c.post("/v2/inference/karlo/t2i", json={**body, "prompt": f"a cat number {i}",
                                                                       "seed": [i]}, headers=headers)
                    assert r.status_code == 200, r.text
                    lat.append(time.perf_counter() - t)

                t = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(n)))
                rates.append(n / (time.perf_counter() - t))
            return {"img_s": statistics.median(rates), "runs": rates, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}

    env = {"PIXELSERVE_MAX_BATCH_SIZE": str(batch), "PIXELSERVE_MAX_QUEUE": str(4 * n)}
    with running_server(cache, env) as (base, key, _):
        return asyncio.run(go(base, key))


def part_engine_http_shape(cache: Path, n: int, repeat: int, batch: int) -> dict:
    """The same jobs as part_http (384 px) straight to the engine: the server-overhead baseline."""
    global SIZE
    SIZE = 384
    return part_engine_concurrent(cache, n, repeat, batch)


PARTS = {
    "plain_one_at_a_time": part_plain_one_at_a_time,
    "plain_latency": part_plain_latency,
    "engine_concurrent": part_engine_concurrent,
    "engine_compiled": part_engine_compiled,
    "http": part_http,
    "engine_http_shape": part_engine_http_shape,
}


def run_part(name: str, cache: Path, **kw) -> dict:
    """One part in a fresh interpreter; its JSON is the last line it prints."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))
    out = subprocess.run([sys.executable, __file__, "--part", name, "--cache", str(cache),
                          "--kw", json.dumps(kw)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"part {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the table ----------------------------------------------------------------------------------
def cpu_rows(cache: Path, repeat: int, quick: bool) -> list[dict]:
    rows = []
    n_http = 4 if quick else 32
    direct = run_part("engine_http_shape", cache, n=n_http, repeat=repeat, batch=4 if quick else 8)
    http = run_part("http", cache, n=n_http, repeat=repeat, batch=4 if quick else 8)
    rows.append({"workload": "cpu_server_overhead", "unit": "img/s", "plain": direct["img_s"],
                 "pixelserve": http["img_s"], "target": ">= 0.9x, <= 5 ms added p50",
                 "ratio": http["img_s"] / direct["img_s"],
                 "added_p50_ms": (http["p50"] - direct["p50"]) * 1e3,
                 "p50_ms": http["p50"] * 1e3, "p99_ms": http["p99"] * 1e3,
                 "note": f"{n_http} concurrent clients, Karlo t2i 384 px {STEPS} steps, tiny-sd"})

    n = 4 if quick else 16
    plain = run_part("plain_one_at_a_time", cache, n=n, repeat=repeat)
    batched = run_part("engine_concurrent", cache, n=n, repeat=repeat, batch=n)
    rows.append({"workload": "cpu_batching", "unit": "img/s", "plain": plain["img_s"],
                 "pixelserve": batched["img_s"], "target": ">= 2x", "ratio": batched["img_s"] / plain["img_s"],
                 "p50_ms": batched["p50"] * 1e3, "p99_ms": batched["p99"] * 1e3,
                 "peak_mib": {"plain": plain["peak_mib"], "pixelserve": batched["peak_mib"]},
                 "note": f"{n} concurrent requests, {SIZE} px, {STEPS} steps, tiny-sd"})

    if not quick:
        eager = run_part("plain_latency", cache, repeat=repeat)
        compiled = run_part("engine_compiled", cache, repeat=repeat)  # cold: compiles into the cache
        warm = run_part("engine_compiled", cache, repeat=repeat)  # warm: the persistent cache is used
        import numpy as np
        from PIL import Image

        diff = np.abs(np.asarray(Image.open(eager["image"]), dtype=int) - np.asarray(Image.open(warm["image"]),
                                                                                     dtype=int)).max()
        rows.append({"workload": "cpu_compile", "unit": "s", "plain": eager["s"], "pixelserve": warm["s"],
                     "target": "faster, output equal within tolerance", "ratio": eager["s"] / warm["s"],
                     "max_abs_pixel_diff": int(diff), "peak_mib": {"plain": eager["peak_mib"],
                                                                    "pixelserve": warm["peak_mib"]}})
        rows.append({"workload": "restart_to_ready", "unit": "s", "plain": compiled["ready_s"],
                     "pixelserve": warm["ready_s"], "target": "<= 30 s with a warm cache",
                     "note": "plain = start with a cold compile cache; pixelserve = restart with it warm"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, small rows, no compile rows")
    ap.add_argument("--out", type=Path, help="JSON path (default: bench/results/<cpu|gpu>-<date>.json; "
                                              "--quick writes only when given)")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--kw", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.part:
        print(json.dumps(PARTS[a.part](Path(a.cache), **json.loads(a.kw))))
        return
    repeat = 1 if a.quick else max(5, a.repeat)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    with tempfile.TemporaryDirectory() as tmp:
        rows = cpu_rows(Path(tmp), repeat, a.quick)
    for w in ("sdxl_b1_latency", "sdxl_throughput", "sd15_b1_latency", "sd15_throughput"):
        if not torch.cuda.is_available():
            rows.append({"workload": w, "unit": "s" if "latency" in w else "img/s", "plain": None,
                         "pixelserve": None, "note": "not measured: no CUDA device on this machine"})
    print(f"\npixelserve vs baseline on {device}, median of {repeat} runs after a warm-up\n")
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
    out = a.out
    if out is None and not a.quick:
        out = RESULTS / f"{'gpu' if torch.cuda.is_available() else 'cpu'}-{dt.date.today().isoformat()}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": device, "date": dt.date.today().isoformat(), "rows": rows}, indent=2))
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
