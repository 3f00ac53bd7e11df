"""The live-preview row of bench/perf.py: one job with previews on vs the same job without, same engine.

- ``preview_overhead``: seconds per job (engine submit to result: denoise, decode) with a live preview
  every PREVIEW_EVERY steps (engine/post/previews.py: latent-to-RGB projection, resize, JPEG) vs none.
  Both sides run in ONE engine, on the same loaded model, alternating job by job: a progress callback
  that takes the preview gets previews, one that does not gets none (engine/client.takes_preview),
  so nothing but the previews differs. The issue's bound: previews add <= 5 %.
  CPU: the tiny demo model (speed does not depend on weight values) at 64 px and, in a full run, at
  512 px. CUDA: the same, plus SD 1.5's full-size architecture with random fp16 weights at 512 px
  (bench/perf_gpu.model_folder).
  Besides the medians: each side's best run, and one preview's own cost (best of 20) on the denoising
  thread and on the JPEG thread: on a shared, loaded CPU the jobs' wall times swing far more than 5 %.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from pathlib import Path

from bench.perf_common import tiny_folder

PREVIEW_EVERY = 5  # the default of PIXELSERVE_PREVIEW_EVERY
STEPS = 20


def part_preview_jobs(cache: Path, size: int, steps: int, repeat: int, full_size: bool = False) -> dict:
    """``repeat`` rounds of one job without previews and one with, alternating which goes first."""
    import torch
    from PIL import Image

    from pixelserve.core.model_config import ModelSpec
    from pixelserve.core.request import GenerationRequest
    from pixelserve.engine.runners.local import LocalEngine

    cuda = torch.cuda.is_available()
    if full_size:
        from bench.perf_gpu import model_folder

        folder = model_folder(cache, "sd", tiny=False)
    else:
        folder = tiny_folder(cache, "sd")
    spec = ModelSpec("m", "sd", folder)

    def request(i: int) -> GenerationRequest:
        return GenerationRequest(model="m", prompt=f"a cat number {i}", width=size, height=size, steps=steps,
                                 guidance_scale=7.5, seeds=(i,))

    async def go():
        engine = LocalEngine({"m": spec}, cache, devices="cuda:0" if cuda else "cpu", preview_every=PREVIEW_EVERY,
                             fuse_qkv=cuda)
        await engine.start()
        await engine.wait_ready()
        if not engine.health().ready:
            raise RuntimeError(f"engine not ready: {engine.health().loading_error}")
        previews: list[bytes] = []

        def without(step, total):  # takes no preview: none are made
            pass

        def with_previews(step, total, preview):
            if preview is not None:
                previews.append(preview)

        async def job(i: int, callback) -> float:
            t = time.perf_counter()
            await engine.submit(f"j{i}", request(i), callback)
            return time.perf_counter() - t

        try:
            await job(0, without)  # warm-up of both paths
            await job(1, with_previews)
            previews.clear()
            off, on = [], []
            for r in range(repeat):
                order = ((off, without), (on, with_previews)) if r % 2 == 0 else ((on, with_previews), (off, without))
                for times, callback in order:
                    times.append(await job(100 + r, callback))
            sides = [Image.open(io.BytesIO(p)).size for p in previews]
            render_ms, encode_ms = preview_cost(size, cuda)
            return {"off_s": statistics.median(off), "on_s": statistics.median(on), "off_runs": off, "on_runs": on,
                    "off_min_s": min(off), "on_min_s": min(on), "render_ms": render_ms, "encode_ms": encode_ms,
                    "paired_overhead_pct": statistics.median((b / a - 1) * 100 for a, b in zip(off, on)),
                    "previews_per_job": len(previews) / max(1, repeat), "preview_px": max(sides) if sides else None,
                    "preview_kib": statistics.median(len(p) for p in previews) / 1024 if previews else None,
                    "device": "cuda" if cuda else "cpu"}
        finally:
            await engine.stop()

    return asyncio.run(go())


def preview_cost(size: int, cuda: bool, trials: int = 20) -> tuple[float, float]:
    """One preview's own cost, best of ``trials`` (a figure a loaded machine barely moves, unlike a job's
    wall time): the part on the denoising thread (projection, resize), and the JPEG encode on the other."""
    import torch

    from pixelserve.engine.post import previews

    latents = torch.randn(4, size // 8, size // 8, device="cuda" if cuda else "cpu")
    box = previews.preview_size(size, size)
    render, encode = [], []
    for _ in range(trials):
        t = time.perf_counter()
        pixels = previews.render(latents, "sd", box)
        if cuda:
            torch.cuda.synchronize()
        render.append(time.perf_counter() - t)
        pixels = pixels.cpu()
        t = time.perf_counter()
        previews.encode(pixels)
        encode.append(time.perf_counter() - t)
    return min(render) * 1e3, min(encode) * 1e3


PARTS = {"preview_jobs": part_preview_jobs}


def row(run_part, cache: Path, repeat: int, quick: bool, cuda: bool) -> list[dict]:
    shapes = [(64, 10 if quick else STEPS, False)]
    if not quick:
        shapes.append((512, STEPS, False))
        if cuda:
            shapes.append((512, 30, True))
    by_shape = {}
    for size, steps, full in shapes:
        got = run_part("preview_jobs", cache, size=size, steps=steps, repeat=repeat, full_size=full)
        by_shape[f"{'sd15' if full else 'tiny-sd'} {size}px {steps} steps"] = got
    main = list(by_shape.values())[-1]  # the largest measured: closest to a real job
    return [{"workload": "preview_overhead", "unit": "s", "plain": main["off_s"], "pixelserve": main["on_s"],
             "ratio": main["off_s"] / main["on_s"], "target": "<= 5% longer (ratio >= 0.95)",
             "overhead_pct": (main["on_s"] / main["off_s"] - 1) * 100,
             "by_shape": {k: {"off_s": v["off_s"], "on_s": v["on_s"],
                              "overhead_pct": (v["on_s"] / v["off_s"] - 1) * 100,
                              "paired_overhead_pct": v["paired_overhead_pct"],
                              # best runs: the least disturbed by other load on the machine
                              "min_s": {"off": v["off_min_s"], "on": v["on_min_s"]},
                              "one_preview_ms": {"device_thread": v["render_ms"], "jpeg_thread": v["encode_ms"]},
                              "previews_per_job": v["previews_per_job"], "preview_px": v["preview_px"],
                              "preview_kib": v["preview_kib"], "device": v["device"]}
                          for k, v in by_shape.items()},
             "note": f"one job at a time, same engine and model, previews every {PREVIEW_EVERY} steps (on) vs "
                     f"none (plain), alternating; main figures: {list(by_shape)[-1]}"}]
