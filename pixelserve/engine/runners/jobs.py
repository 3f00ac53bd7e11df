"""A job of the local engine, and how a batch of them runs on a loaded model (on its device's thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.engine import post
from pixelserve.engine.client import ProgressCallback
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.batching import AllSet, run_batch
from pixelserve.engine.speed import approx, optimize


@dataclass
class Job:
    id: str
    request: GenerationRequest
    future: asyncio.Future
    on_progress: ProgressCallback | None
    cancel: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.perf_counter)


def settle(future: asyncio.Future, result=None, exc: Exception | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def run_jobs(model: Any, batch: list[Job], loop: asyncio.AbstractEventLoop, *, vae_tiling_pixels: int,
             step_cache_interval: int) -> list[list[Any]]:
    """One pipeline call for the batch (or one job) on ``model``, then each job's post-processing
    (NSFW scores aside: the engine scores them off the device thread); the images per job."""
    first = batch[0].request
    family = family_for(model.spec.family)

    def progress(job: Job):
        def on_step(step: int, total: int) -> None:
            if job.on_progress is not None:
                loop.call_soon_threadsafe(job.on_progress, step, total)
        return on_step

    optimize.vae_tiling(model.pipe, first.width, first.height, vae_tiling_pixels)
    cache_steps = step_cache_interval if model.spec.family in approx.STEP_CACHE_FAMILIES else 0
    if first.task == "post":  # postprocess(): the image exists, only post-processing runs
        per_job = [[first.init_image.convert("RGB")]]
    elif len(batch) == 1:
        job = batch[0]
        with approx.step_cache(model.pipe, cache_steps):
            per_job = [family.run(model, job.request, on_step=progress(job), cancel=job.cancel)]
    else:
        # The batch stops early only when every job in it is cancelled.
        cancel = AllSet([job.cancel for job in batch])
        steps = [progress(job) for job in batch]
        with approx.step_cache(model.pipe, cache_steps):
            per_job = run_batch(family, model, [job.request for job in batch],
                                on_step=lambda s, t: [f(s, t) for f in steps], cancel=cancel)
    return [post.apply(model, family, job.request, images, cancel=job.cancel, nsfw=False)[0]
            for job, images in zip(batch, per_job)]
