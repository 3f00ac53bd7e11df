"""validate -> record -> submit -> store -> record: the path every dialect's request takes."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Awaitable

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core import timing
from pixelserve.core.images import CONTENT_TYPES, encode_image
from pixelserve.core.request import GenerationRequest
from pixelserve.core.validate import Limits, validate
from pixelserve.db.crud import jobs, quotas
from pixelserve.engine.client import EngineClient
from pixelserve.errors import Cancelled, NotFound, PixelserveError, QuotaExceeded
from pixelserve.service.auth import Caller
from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner
from pixelserve.storage.urls import download_url

log = logging.getLogger(__name__)

#: The request's texts, left out of job records when a caller asks for that.
PROMPT_FIELDS = ("prompt", "negative_prompt", "prompt_2", "negative_prompt_2")


@dataclass(frozen=True)
class OutputOptions:
    format: str = "png"  # png | jpeg | webp
    quality: int | None = None


@dataclass(frozen=True)
class ServedImage:
    id: str
    seed: int
    data: bytes
    content_type: str
    storage_key: str
    nsfw_score: float | None = None  # set when the request asked for the NSFW check


@dataclass(frozen=True)
class ServiceResult:
    job_id: str
    model: str
    images: list[ServedImage]
    timings_ms: dict[str, float]


class GenerationService:
    def __init__(self, engine: EngineClient, sessions: sessionmaker[Session], store: ImageStore,
                 signer: UrlSigner, limits: Limits = Limits(), quota: quotas.QuotaLimits = quotas.QuotaLimits()):
        self.engine = engine
        self.sessions = sessions
        self.store = store
        self.signer = signer
        self.limits = limits
        self.quota = quota
        self.progress: dict[str, float] = {}
        # Encoding and storing answers: off the event loop and the device threads, and on few threads
        # so that on a CPU box they never take more than a share of the cores from denoising.
        self._encoders = ThreadPoolExecutor(max(1, (os.cpu_count() or 2) // 4), thread_name_prefix="encode")
        # Job records (admit, running, finish, failure) are written by one thread, in order: a burst of
        # requests no longer contends for the database's write lock (SQLite's busy handler sleeps in
        # steps of ms: the burst's slowest admission fell from 59-109 to 28-39 ms), and a job's own
        # writes cannot overtake each other.
        self._records = ThreadPoolExecutor(1, thread_name_prefix="job-records")

    def close(self) -> None:
        self._encoders.shutdown(wait=False, cancel_futures=True)
        self._records.shutdown(wait=True)  # the last failures and finishes still reach the database

    def model_info(self, model_id: str):
        """The engine's ModelInfo for a configured model id (NotFound if it is not served)."""
        for m in self.engine.models():
            if m.id == model_id:
                return m
        raise NotFound(f"model {model_id!r} is not served here")

    def check(self, request: GenerationRequest) -> GenerationRequest:
        """Validate against the engine's models; raises before anything is recorded or charged."""
        request = validate(request, self.engine.models(), self.limits)
        self.engine.check(request)
        return request

    async def generate(self, request: GenerationRequest, *, dialect: str, key: Caller | None,
                       output: OutputOptions = OutputOptions(), record_prompt: bool = True) -> ServiceResult:
        """``record_prompt=False`` keeps the prompts out of the job record (OctoAI's log_prompt)."""
        request = self.check(request)
        job_id = str(uuid.uuid4())
        described = request.describe()
        if not record_prompt:
            described.update({k: "[not logged]" for k in PROMPT_FIELDS if described.get(k) is not None})
        with timing.stage("admit"):
            exhausted = await self._in_records(self._admit, job_id, request.model, described, dialect, key)
        if exhausted:
            raise QuotaExceeded(f"quota per {exhausted} exceeded for this key",
                                retry_after=quotas.seconds_until_next(exhausted))
        started = False

        def on_progress(step: int, total: int) -> None:
            nonlocal started
            if not started:
                started = True
                self._in_records(self._db, jobs.mark_running, job_id)
            self.progress[job_id] = step / max(total, 1)

        try:
            with timing.stage("engine"):
                result = await self.engine.submit(job_id, request, on_progress)
            with timing.stage("store"):
                images = await asyncio.get_running_loop().run_in_executor(self._encoders, self._store_images, job_id,
                                                                          result, output)
        except asyncio.CancelledError:
            await asyncio.shield(self._in_records(self._failed, job_id, "client disconnected", True))
            raise
        except PixelserveError as e:
            await self._in_records(self._failed, job_id, str(e), isinstance(e, Cancelled))
            raise
        except Exception as e:
            await self._in_records(self._failed, job_id, f"{type(e).__name__}: {e}", False)
            raise
        finally:
            self.progress.pop(job_id, None)
        with timing.stage("finish"):
            await self._in_records(self._db, jobs.finish_job, job_id, [
                jobs.StoredImage(im.id, i, im.seed, im.storage_key, im.content_type) for i, im in enumerate(images)
            ])
        return ServiceResult(job_id=job_id, model=request.model, images=images, timings_ms=result.timings_ms)

    def image_url(self, base_url: str, storage_key: str) -> str:
        return download_url(self.store, self.signer, base_url, storage_key)

    # -- helpers -----------------------------------------------------------------------------
    def _in_records(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._records, fn, *args)

    def _db(self, fn, *args, **kwargs):
        with self.sessions() as session:
            return fn(session, *args, **kwargs)

    def _admit(self, job_id: str, model: str, described: dict, dialect: str, key: Caller | None) -> str | None:
        """Count the request against the key's quota, then record the job queued (one thread hop,
        one session); returns the exhausted quota window, with nothing recorded, or None."""
        with self.sessions() as session:
            if key is not None:
                exhausted = quotas.consume(session, key.id, job_id, self.quota)
                if exhausted:
                    return exhausted
            jobs.create_job(session, job_id, dialect=dialect, model=model, request=described,
                            api_key_id=key.id if key else None)
        return None

    def _failed(self, job_id: str, error: str, cancelled: bool) -> None:
        """A failed or cancelled job is recorded and does not count against the key's quota."""
        with self.sessions() as session:
            jobs.fail_job(session, job_id, error, cancelled=cancelled)
            quotas.release(session, job_id)

    def _store_images(self, job_id: str, result, output: OutputOptions) -> list[ServedImage]:
        out = []
        scores = result.nsfw_scores or [None] * len(result.images)
        for image, seed, score in zip(result.images, result.seeds, scores):
            image_id = str(uuid.uuid4())
            data = encode_image(image, output.format, output.quality)
            key = f"{job_id}/{image_id}.{output.format}"
            self.store.put(key, data, CONTENT_TYPES[output.format])
            out.append(ServedImage(image_id, seed, data, CONTENT_TYPES[output.format], key, score))
        return out


async def cancel_on_disconnect(disconnected: Awaitable, work: Awaitable):
    """Run ``work``; cancel it (and so its engine job) as soon as ``disconnected`` completes, i.e. the
    client went away (dialects/base.client_gone). Both are awaited together, nothing is polled: polling
    every in-flight request four times a second took 37% of the event loop's Python-level samples under
    bursts of 32 concurrent requests (py-spy), time the answers of finished jobs waited for."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # finished (even in the same instant as a hang-up): the answer goes out
            return task.result()
        if not watcher.cancelled() and watcher.exception() is not None:
            log.debug("watching for a disconnect failed; taking it as one", exc_info=watcher.exception())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Cancelled("client disconnected")
    finally:
        for t in (task, watcher):
            if not t.done():
                t.cancel()
