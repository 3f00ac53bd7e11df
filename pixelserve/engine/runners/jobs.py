"""A job of the local engine, and how a batch of them runs on a loaded model (on its device's thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.engine import post
from pixelserve.engine.client import ProgressCallback, takes_preview
from pixelserve.engine.families import family_for
from pixelserve.engine.post.previews import JobPreviews, preview_size
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
             step_cache_interval: int, preview_every: int = 0,
             preview_executor: Executor | None = None) -> list[list[Any]]:
    """One pipeline call for the batch (or one job) on ``model``, then each job's post-processing
    (NSFW scores aside: the engine scores them off the device thread); the images per job.

    ``preview_every`` > 0: a live preview every that many steps for each job whose progress callback
    takes one (engine/client.ProgressCallback), its reports then going through ``preview_executor``."""
    first = batch[0].request
    family = family_for(model.spec.family)
    previews = job_previews(model, batch, loop, preview_every, preview_executor, family.batchable)

    def progress(job: Job, reports: JobPreviews | None):
        if reports is not None:  # its reports go through the previews' thread, in step order
            return reports.step

        def on_step(step: int, total: int) -> None:
            if job.on_progress is not None:
                loop.call_soon_threadsafe(job.on_progress, step, total)
        return on_step

    optimize.vae_tiling(model.pipe, first.width, first.height, vae_tiling_pixels)
    cache_steps = step_cache_interval if model.spec.family in approx.STEP_CACHE_FAMILIES else 0
    try:
        if first.task == "post":  # postprocess(): the image exists, only post-processing runs
            per_job = [[first.init_image.convert("RGB")]]
        elif len(batch) == 1:
            job = batch[0]
            hook = previews[0].latents if previews[0] is not None else None
            with approx.step_cache(model.pipe, cache_steps):
                per_job = [family.run(model, job.request, on_step=progress(job, previews[0]), cancel=job.cancel,
                                      preview=hook)]
        else:
            # The batch stops early only when every job in it is cancelled.
            cancel = AllSet([job.cancel for job in batch])
            steps = [progress(job, p) for job, p in zip(batch, previews)]
            with approx.step_cache(model.pipe, cache_steps):
                per_job = run_batch(family, model, [job.request for job in batch],
                                    on_step=lambda s, t: [f(s, t) for f in steps], cancel=cancel,
                                    previews=[p.latents if p is not None else None for p in previews])
    finally:
        for p in previews:  # every report is on its way to the loop before the job's result is
            if p is not None:
                p.finish()
    return [post.apply(model, family, job.request, images, cancel=job.cancel, nsfw=False)[0]
            for job, images in zip(batch, per_job)]


def job_previews(model: Any, batch: list[Job], loop: asyncio.AbstractEventLoop, every: int,
                 executor: Executor | None, stacked: bool) -> list[JobPreviews | None]:
    """Per job: its previews, or None (previews off, a post-only job, a callback that takes none).
    ``stacked``: the jobs share one pipeline call, each job's images after the ones before it."""
    out: list[JobPreviews | None] = []
    offset = 0
    for job in batch:
        request = job.request
        if every > 0 and executor is not None and request.task != "post" and takes_preview(job.on_progress):
            def deliver(step: int, total: int, preview: bytes | None, callback=job.on_progress) -> None:
                loop.call_soon_threadsafe(callback, step, total, preview)
            out.append(JobPreviews(model.spec.family, every, preview_size(request.width, request.height), deliver,
                                   executor, vae=model.state.get("preview_vae"), index=offset if stacked else 0))
        else:
            out.append(None)
        offset += len(request.seeds)
    return out
