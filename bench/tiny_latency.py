"""Latency of one tiny-model t2i request: pixelserve's engine and HTTP path vs plain diffusers.

Runs on CPU or GPU, on the tiny random-weight models (speed does not depend on weight values).
It measures pixelserve's overhead around the same pipeline call; it says nothing about real
model throughput (see the GPU benchmarks for that).

Each path runs in its own process: on CPU, torch work from two threads of one process (two
OpenMP thread teams) slows both about 3x on tiny models, which would bias whichever runs second.

    .venv/bin/python bench/tiny_latency.py [--size 64] [--steps 10] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.demo import tiny
from pixelserve.engine.runners.local import LocalEngine


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def plain_diffusers(folder: Path, size: int, steps: int, repeat: int) -> list[float]:
    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def call():
        with torch.inference_mode():
            pipe("a cat", width=size, height=size, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(1)).images[0].tobytes()

    return timed(call, repeat)


def engine_path(cache: Path, model: str, size: int, steps: int, repeat: int) -> list[float]:
    async def go():
        engine = LocalEngine(demo_config().models, cache)
        await engine.start()
        await engine.wait_ready()
        req = GenerationRequest(model=model, prompt="a cat", width=size, height=size, steps=steps, seeds=(1,))
        out = []
        for i in range(repeat + 1):
            t = time.perf_counter()
            await engine.submit(f"j{i}", req)
            out.append((time.perf_counter() - t) * 1e3)
        await engine.stop()
        return out[1:]

    return asyncio.run(go())


def http_path(data_dir: Path, size: int, steps: int, repeat: int) -> list[float]:
    """Karlo t2i through the whole app (auth, validation, job record, png encode, store)."""
    from fastapi.testclient import TestClient

    from pixelserve.app import create_app
    from pixelserve.db.crud.keys import create_key
    from pixelserve.settings import Settings

    app = create_app(Settings(data_dir=data_dir))
    with TestClient(app) as client:
        client.portal.call(app.state.engine.wait_ready)
        with app.state.sessions() as s:
            _, key = create_key(s, "bench", app.state.auth.secret)
        body = {"version": "v2.0", "prompt": "a cat", "width": size, "height": size,
                "num_inference_steps": steps, "image_format": "png", "return_type": "base64_string", "seed": [1]}
        headers = {"Authorization": f"KakaoAK {key}"}

        def call():
            assert client.post("/v2/inference/karlo/t2i", json=body, headers=headers).status_code == 200

        return timed(call, repeat)


def row(name: str, ms: list[float]) -> str:
    return f"| {name:<52} | {statistics.median(ms):9.1f} | {min(ms):9.1f} | {max(ms):9.1f} |"


def run_case(case: str, size: int, steps: int, repeat: int) -> list[float]:
    """One measurement, in this process (called in a fresh subprocess by main)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cache = data / "cache"
        kind, model = case.split(":")
        family = model.removeprefix("tiny-")
        if kind == "plain":
            return plain_diffusers(tiny.ensure_tiny_model(family, cache / "tiny"), size, steps, repeat)
        if kind == "engine":
            return engine_path(cache, model, size, steps, repeat)
        return http_path(data, size, steps, repeat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case, a.size, a.steps, a.repeat)))
        return
    karlo = max(384, a.size)  # the smallest size Karlo v2.0 accepts
    cases = [
        (f"plain diffusers tiny-sd {a.size}px", "plain:tiny-sd", a.size),
        (f"pixelserve engine tiny-sd {a.size}px", "engine:tiny-sd", a.size),
        (f"plain diffusers tiny-sdxl {a.size}px", "plain:tiny-sdxl", a.size),
        (f"pixelserve engine tiny-sdxl {a.size}px", "engine:tiny-sdxl", a.size),
        (f"plain diffusers tiny-sd {karlo}px", "plain:tiny-sd", karlo),
        (f"pixelserve HTTP Karlo v2.0 (tiny-sd) {karlo}px", "http:tiny-sd", karlo),
    ]
    rows = []
    for name, case, size in cases:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--size", str(size), "--steps", str(a.steps),
                              "--repeat", str(a.repeat)], capture_output=True, text=True, check=True)
        rows.append(row(f"{name} {a.steps} steps", json.loads(out.stdout.strip().splitlines()[-1])))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"\ntiny-model latency, {device}, torch {torch.__version__}, {a.repeat} runs each (ms)\n")
    print(f"| {'path':<52} | {'median':>9} | {'min':>9} | {'max':>9} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
