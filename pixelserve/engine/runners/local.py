"""The embedded engine: a bounded queue and one worker per device, pipelines off the event loop.

Each device has its own single thread: a pipeline call never blocks the event loop, and
two jobs never share a device's pipeline objects at the same time. Jobs are taken from one
shared queue, so every device stays busy. Cancellation (client gone, explicit cancel) stops
a queued job before it starts and a running one between two denoising steps.

Later engines (supervised worker process, Ray Serve) implement the same ``EngineClient``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import GenerationRequest, GenerationResult
from pixelserve.engine import checks, post
from pixelserve.engine.client import EngineHealth, ModelInfo, ProgressCallback
from pixelserve.engine.families import family_for
from pixelserve.engine.families.base import JobCancelled
from pixelserve.engine.runners import devices as device_info
from pixelserve.engine.runners.batching import BatchQueue, batch_key
from pixelserve.engine.runners.jobs import Job, run_jobs, settle
from pixelserve.engine.runners.models import ModelRegistry
from pixelserve.engine.speed import approx, optimize
from pixelserve.engine.weights import gc_freeze, host_memory
from pixelserve.errors import (Cancelled, DeadlineExceeded, EngineFailure, NotReady, OutOfMemory, Overloaded,
                               PixelserveError)

log = logging.getLogger(__name__)


def available_devices(requested: str = "auto") -> list[str]:
    if requested != "auto":
        return [d.strip() for d in requested.split(",") if d.strip()]
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


class LocalEngine:
    def __init__(self, specs: dict[str, ModelSpec], cache_dir: Path, *, devices: str = "auto",
                 max_queue: int = 64, max_batch_size: int = 1, max_batch_delay_ms: float = 0.0,
                 max_batch_wait_ms: float = 0.0,
                 compile: bool = False, warmup_sizes: tuple[tuple[int, int], ...] = (),
                 vae_tiling_pixels: int = 1536 * 1536, start_deadline_s: float = 0.0, deadline_s: float = 0.0,
                 compile_mode: str | None = None, fuse_qkv: bool | None = None, model_cache_gib: float = 0.0,
                 fp8: bool = False, step_cache_interval: int = 0, tiny_vae: dict[str, Path] | None = None,
                 gc_freeze: bool = False, preview_every: int = 0, channels_last: bool | None = None,
                 retain_host_memory: bool | None = None):
        import diffusers
        import transformers

        diffusers.utils.logging.set_verbosity_error()  # per-call pipelines would log on every job
        transformers.utils.logging.set_verbosity_error()  # long-prompt and embedding-resize notices
        self.devices = available_devices(devices)
        self.optimizations = optimize.Optimizations(compile=compile, compile_mode=compile_mode, fuse_qkv=fuse_qkv,
                                                    fp8=fp8, channels_last=channels_last,
                                                    retain_host_memory=retain_host_memory)
        optimize.check_supported(self.optimizations, self.devices)
        if any(self.optimizations.on("retain_host_memory", d) for d in self.devices):
            host_memory.retain()  # before the device threads below take their first allocation
        # Opt-in approximations (engine/speed/approx.py): they change the image.
        self.step_cache_interval = step_cache_interval
        if compile and step_cache_interval >= 2:
            raise optimize.UnsupportedOptimization(
                "step caching rewraps UNet blocks on every call, which would recompile a compiled UNet: "
                "use PIXELSERVE_COMPILE or PIXELSERVE_STEP_CACHE_INTERVAL, not both")
        self.tiny_vae = dict(tiny_vae or {})
        self.registry = ModelRegistry(specs, cache_dir, max_bytes=int(model_cache_gib * 2**30), prepare=self._prepare)
        self.max_queue = max_queue
        # Cross-request batching (engine/runners/batching.py): jobs sharing a batch key run in one call.
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_delay_s = max(0.0, max_batch_delay_ms) / 1e3
        self.max_batch_wait_s = max(0.0, max_batch_wait_ms) / 1e3
        self.warmup_sizes = warmup_sizes
        self.vae_tiling_pixels = vae_tiling_pixels
        self.start_deadline_s = start_deadline_s  # 0: a queued job waits as long as it takes
        self.deadline_s = deadline_s  # 0: no limit on a job's total time (queue + run)
        # engine/weights/gc_freeze.py: once ready, freeze what the process keeps for good, so that the
        # collector's full passes (long, with every thread stopped) stop walking it.
        self.gc_freeze = gc_freeze
        self._frozen = False
        if compile:
            optimize.use_compile_cache(Path(cache_dir) / "compile")
        self._queue: BatchQueue | None = None
        self._jobs: dict[str, Job] = {}
        self._running: set[str] = set()
        self._executors = {d: ThreadPoolExecutor(1, thread_name_prefix=f"engine-{d}") for d in self.devices}
        # NSFW scoring (onnxruntime, CPU) runs here, off the device threads, while the next batch denoises.
        self._post_executor = ThreadPoolExecutor(1, thread_name_prefix="engine-post")
        # Live previews (engine/post/previews.py): JPEGs encoded and progress handed over here, in step order.
        self.preview_every = max(0, preview_every)
        self._preview_executor = ThreadPoolExecutor(1, thread_name_prefix="engine-previews") if preview_every else None
        self._post_tasks: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._ready = False
        self._loading_error: str | None = None
        self._text_info: dict[str, checks.TextInfo] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._queue = BatchQueue(self.max_queue, key=self._batch_key)
        self._tasks = [asyncio.create_task(self._load_all(), name="engine-load")]

    async def wait_ready(self) -> None:
        await self._tasks[0]

    async def _load_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(
                loop.run_in_executor(self._executors[d], self.registry.get, mid, d)
                for d in self.devices for mid in self.registry.specs
            ))
            self._text_info = {mid: await loop.run_in_executor(
                self._executors[self.devices[0]], lambda m=mid: checks.text_info(self.registry.get(m, self.devices[0])))
                for mid in self.registry.specs}
        except Exception as e:  # a bad checkpoint: stay alive, not ready, and say why
            log.exception("model loading failed")
            self._loading_error = f"{type(e).__name__}: {e}"
            return
        await self._optimize_and_warm_up()
        if self._loading_error is not None:
            return
        if self.gc_freeze:
            started = time.perf_counter()
            frozen = gc_freeze.freeze()
            self._frozen = True
            log.info("froze %d long-lived objects out of the garbage collector's passes (%.0f ms)", frozen,
                     (time.perf_counter() - started) * 1e3)
        self._ready = True
        self._tasks += [asyncio.create_task(self._worker(d), name=f"engine-worker-{d}") for d in self.devices]
        log.info("engine ready: %d model(s) on %s", len(self.registry.specs), ", ".join(self.devices))

    async def stop(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
            if not job.future.done():
                job.future.set_exception(Cancelled("server shutting down"))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._post_tasks, return_exceptions=True)
        for ex in [*self._executors.values(), self._post_executor, self._preview_executor]:
            if ex is not None:  # the previews' after the devices': a stopping job hands its last reports over
                ex.shutdown(wait=True, cancel_futures=True)
        if self._frozen:  # the models and everything else frozen at start become collectable again
            gc_freeze.unfreeze()
            self._frozen = False
        self.registry.unload_all()

    # -- jobs --------------------------------------------------------------------------------
    async def submit(self, job_id: str, request: GenerationRequest,
                     on_progress: ProgressCallback | None = None) -> GenerationResult:
        if not self._ready:
            raise NotReady(self._loading_error or "models are still loading; retry shortly")
        if request.model not in self.registry.specs:
            raise EngineFailure(f"unknown model {request.model!r}")
        loop = asyncio.get_running_loop()
        job = Job(job_id, request, loop.create_future(), on_progress)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"queue full ({self.max_queue} jobs waiting); retry later") from None
        self._jobs[job_id] = job
        try:
            # shield: a cancelled awaiter must not cancel the future the worker will settle.
            return await asyncio.wait_for(asyncio.shield(job.future), self.deadline_s or None)
        except TimeoutError:
            # Past its deadline: stopped before its next step, never left running for nobody.
            error = DeadlineExceeded(f"not finished within {self.deadline_s:g} s; it was stopped")
            settle(job.future, exc=error)
            self.cancel(job_id)
            if job.future.exception() is not error:  # it finished in the same instant: keep its answer
                return job.future.result()
            raise error from None
        except asyncio.CancelledError:
            self.cancel(job_id)
            # Nobody awaits the job any more, and asyncio.shield dropped its own reader with the cancelled
            # waiter: the job's settling ("cancelled while running") is read here, not logged by asyncio
            # as "Future exception was never retrieved" when the job is dropped.
            job.future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        finally:
            self._jobs.pop(job_id, None)

    def text_infos(self) -> dict[str, checks.TextInfo]:
        """What the model checks need of each loaded model (tokenizers, text layers), for an API process
        that runs them itself (the process and Ray engines)."""
        return dict(self._text_info)

    def check(self, request: GenerationRequest) -> None:
        """Model-aware checks before anything is recorded (EngineClient.check)."""
        checks.check_model(request, self.registry.specs, self._text_info)

    async def postprocess(self, job_id: str, request: GenerationRequest, image) -> GenerationResult:
        """Only ``request.post`` on an existing image, queued like any job (EngineClient.postprocess)."""
        return await self.submit(job_id, request.with_(task="post", init_image=image))

    def cancel(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None:
            return False
        job.cancel.set()
        if job_id not in self._running:  # queued: answered now, not when a worker reaches it (which skips it)
            settle(job.future, exc=Cancelled("cancelled before it started"))
        return True

    async def execute(self, requests: list[tuple[str, GenerationRequest]], device: str | None = None,
                      progress: list[ProgressCallback | None] | None = None) -> list[GenerationResult | Exception]:
        """Run ``(job_id, request)`` pairs now, bypassing the queue, as one batch: for a caller that
        batches by itself (Ray Serve's ``@serve.batch``). The requests must share a batch key (or
        be one request). A result or the error per request, in order."""
        if not self._ready:
            raise NotReady(self._loading_error or "models are still loading; retry shortly")
        loop = asyncio.get_running_loop()
        progress = progress or [None] * len(requests)
        jobs = [Job(job_id, request, loop.create_future(), cb) for (job_id, request), cb in zip(requests, progress)]
        await self._execute(jobs, device or self.devices[0], loop)
        # The futures settle after the pipeline call (NSFW scores come off the device thread).
        return list(await asyncio.gather(*(job.future for job in jobs), return_exceptions=True))

    def waiting(self) -> list[str]:
        """Ids of the submitted jobs that have not started running (queued behind others)."""
        return [job_id for job_id in self._jobs if job_id not in self._running]

    def _batch_key(self, job: Job):
        return batch_key(job.request) if self.max_batch_size > 1 else None

    async def _worker(self, device: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = await self._queue.get_batch(self.max_batch_size, self.max_batch_delay_s,
                                                lambda j: j.request.num_images, self.max_batch_wait_s)
            batch = []
            now = time.perf_counter()
            for job in taken:
                if job.cancel.is_set() or job.future.done():
                    settle(job.future, exc=Cancelled("cancelled before it started"))
                elif self.start_deadline_s and now - job.queued_at > self.start_deadline_s:
                    # Waited too long to start: its client has likely given up; it never runs late.
                    settle(job.future, exc=Overloaded(
                        f"not started within {self.start_deadline_s:g} s of queueing; retry later"))
                else:
                    batch.append(job)
            if batch:
                await self._execute(batch, device, loop)

    async def _execute(self, batch: list[Job], device: str, loop: asyncio.AbstractEventLoop) -> None:
        """Run one batch on ``device`` and settle every job's future; never raises."""
        ids = [job.id for job in batch]
        self._running.update(ids)
        started = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executors[device], self._run, batch, device, loop)
        except JobCancelled:
            for job in batch:
                settle(job.future, exc=Cancelled("cancelled while running"))
        except torch.OutOfMemoryError as e:
            self._recover_memory(device)
            if len(batch) > 1:  # a smaller batch may fit: each job again, alone
                for job in batch:
                    await self._execute([job], device, loop)
            else:
                r = batch[0].request
                settle(batch[0].future, exc=OutOfMemory(
                    f"out of memory on {device} for {r.num_images} image(s) of {r.width}x{r.height} ({e}); "
                    "retry later, or ask for fewer or smaller images"))
        except PixelserveError as e:  # a request the family cannot run: its own error
            for job in batch:
                settle(job.future, exc=e)
        except Exception as e:  # a failed job must never take the worker down
            log.exception("job(s) %s failed", ", ".join(ids))
            for job in batch:
                settle(job.future, exc=EngineFailure(f"generation failed: {type(e).__name__}: {e}"))
        else:
            done = time.perf_counter()
            if len(outputs) != len(batch):  # a family bug: fail the jobs, keep the worker
                outputs = [EngineFailure("generation returned no result for this job")] * len(batch)
            for job, out in zip(batch, outputs):
                if isinstance(out, Exception):
                    settle(job.future, exc=out)
                elif job.cancel.is_set():  # cancelled while its batch-mates kept it running
                    settle(job.future, exc=Cancelled("cancelled while running"))
                else:
                    result = GenerationResult(
                        images=out, seeds=list(job.request.seeds), model=job.request.model,
                        timings_ms={"queue": (started - job.queued_at) * 1e3, "run": (done - started) * 1e3,
                                    "batch_size": float(len(batch))},
                    )
                    if job.request.post.nsfw_check:  # scored off the device thread; the worker goes on
                        task = loop.create_task(self._score_andsettle(job, result, loop))
                        self._post_tasks.add(task)
                        task.add_done_callback(self._post_tasks.discard)
                    else:
                        settle(job.future, result=result)
        finally:
            self._running.difference_update(ids)

    async def _score_andsettle(self, job: Job, result: GenerationResult, loop: asyncio.AbstractEventLoop) -> None:
        t = time.perf_counter()
        try:
            scores = await loop.run_in_executor(self._post_executor, post.nsfw_scores, result.images)
        except Exception as e:
            log.exception("NSFW check of job %s failed", job.id)
            settle(job.future, exc=EngineFailure(f"NSFW check failed: {type(e).__name__}: {e}"))
            return
        result.nsfw_scores = scores
        result.timings_ms["nsfw"] = (time.perf_counter() - t) * 1e3
        settle(job.future, result=result)

    def _run(self, batch: list[Job], device: str, loop: asyncio.AbstractEventLoop):
        """One pipeline call for the batch (or one job); returns the images per job (NSFW scores
        come later, off this thread)."""
        with self.registry.using(batch[0].request.model, device) as model:
            return run_jobs(model, batch, loop, vae_tiling_pixels=self.vae_tiling_pixels,
                            step_cache_interval=self.step_cache_interval, preview_every=self.preview_every,
                            preview_executor=self._preview_executor)

    def _prepare(self, model) -> None:
        """After every load (engine/runners/models.py): the tiny VAE if configured, then the optimisations."""
        path = self.tiny_vae.get(model.spec.family)
        if path is not None:
            model.state["preview_vae"] = approx.load_tiny_vae(path, model.pipe.vae.dtype, model.device)
            approx.use_tiny_vae(model.pipe, model.state["preview_vae"])
        optimize.apply(model.pipe, model.device, self.optimizations)

    async def _optimize_and_warm_up(self) -> None:
        """Compile (when asked) and run each configured warm-up size once, before turning ready."""
        if not self.optimizations.compile and not self.warmup_sizes:
            return
        loop = asyncio.get_running_loop()
        try:
            for d in self.devices:
                for mid in self.registry.specs:
                    await loop.run_in_executor(self._executors[d], self._warm_up, mid, d)
        except Exception as e:
            log.exception("optimising or warming up failed")
            self._loading_error = f"{type(e).__name__}: {e}"

    def _warm_up(self, model_id: str, device: str) -> None:
        model = self.registry.get(model_id, device)
        family = family_for(model.spec.family)
        default = 64 if model.spec.is_demo else {"sd": 512, "sdxl": 1024}.get(model.spec.family, 256)
        sizes = self.warmup_sizes or ((default, default),)
        for w, h in sizes:
            family.run(model, GenerationRequest(model=model_id, prompt="warm-up", width=w, height=h, steps=2,
                                                seeds=(0,)))

    @staticmethod
    def _recover_memory(device: str) -> None:
        gc_freeze.free_memory(device)

    # -- introspection -----------------------------------------------------------------------
    def health(self) -> EngineHealth:
        return EngineHealth(
            ready=self._ready, devices=tuple(self.devices),
            queue_depth=self._queue.qsize() if self._queue else 0, queue_capacity=self.max_queue,
            running=len(self._running), loading_error=self._loading_error,
        )

    def device_memory(self) -> dict[str, dict[str, int]]:
        """Per device, bytes ``used`` and ``total`` (engine/runners/devices.py), read when /metrics is scraped."""
        return device_info.memory(self.devices)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo.of(s, loaded=all(self.registry.is_loaded(s.id, d) for d in self.devices))
            for s in self.registry.specs.values()
        ]
