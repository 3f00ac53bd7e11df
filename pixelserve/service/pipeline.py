"""The one path every job takes, whatever its dialect or engine:

    validate -> check -> admit -> submit -> store -> settle -> record

1. validate: the request's fields against the chosen model (core.validate);
2. check: the model-aware checks (token limits, adapter files, family features); together these two
   make the only ``ValidRequest`` the later stages take;
3. admit: the key's quota, then the job record (and whatever its policy writes: Studio's credit
   reservation and image records) in one transaction; event ``queued``;
4. submit: the engine runs it; events ``started`` and ``progress``;
5. store: the images are encoded and put in the image store;
6. settle: the policy's books (Studio: refunds for images that did not come back);
7. record: the job's final state, in the same transaction as 6; event ``finished``, ``failed`` or
   ``cancelled``.

What differs between dialects is a ``JobPolicy`` (what it charges, records and stores; whether the
caller waits), not a second path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core import timing
from pixelserve.core.images import CONTENT_TYPES, encode_image, fit
from pixelserve.core.request import GenerationRequest, GenerationResult
from pixelserve.core.validate import Limits, ValidRequest, validated
from pixelserve.db.crud import jobs, quotas
from pixelserve.engine.client import EngineClient
from pixelserve.errors import Cancelled, Conflict, NotFound, PixelserveError, QuotaExceeded
from pixelserve.service.auth import Caller
from pixelserve.service import job_options
from pixelserve.service.events import EventBus
from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner
from pixelserve.storage.urls import download_url

log = logging.getLogger(__name__)

#: The request's texts, left out of job records when a caller asks for that.
PROMPT_FIELDS = ("prompt", "negative_prompt", "prompt_2", "negative_prompt_2")
#: Cancel requests remembered for jobs not executing yet, at most.
MAX_CANCELLED = 10_000


@dataclass(frozen=True)
class OutputOptions:
    format: str = "png"  # png | jpeg | webp
    quality: int | None = None
    #: (width, height) the images are resized to before encoding: a dialect that generated them at
    #: another size (OpenAI: a size the model draws badly is generated at its native size).
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ServedImage:
    id: str
    seed: int
    data: bytes | None  # None where the policy keeps the bytes only in the store
    content_type: str
    storage_key: str
    nsfw_score: float | None = None  # set when the request asked for the NSFW check
    resolution: str | None = None  # "WxH" as stored, where the policy records it


@dataclass(frozen=True)
class ServiceResult:
    job_id: str
    model: str
    images: list[ServedImage]
    timings_ms: dict[str, float]


@dataclass
class Job:
    """An admitted job: what the stages after ``admit`` carry along."""

    id: str
    request: GenerationRequest  # a ValidRequest's request: admit takes nothing else
    dialect: str
    caller_id: int | None
    policy: "JobPolicy"
    admitted: Any = None  # what the policy's admit returned (Studio: image ids, balances)
    client_id: str | None = None  # the caller's own id for it (X-Job-Id)
    webhook_url: str | None = None
    started: bool = False
    extra: dict = field(default_factory=dict)


class JobPolicy(Protocol):
    """What a kind of job adds to the common stages. Methods taking a session run inside the stage's
    transaction; the pipeline commits it."""

    def admit(self, session: Session, job: Job) -> Any: ...

    def submit(self, engine: EngineClient, job: Job, on_progress) -> Awaitable[GenerationResult]: ...

    def store(self, store: ImageStore, job: Job, result: GenerationResult) -> list[ServedImage]: ...

    def settle(self, session: Session, job: Job, images: list[ServedImage]) -> None: ...

    def fail(self, session: Session, job: Job, error: str) -> None: ...

    def record_cancel(self, job: Job) -> bool:
        """False: a cancelled run is left as it is (a resumable job the next start runs again)."""


class DirectPolicy:
    """A caller waiting for its images in the answer: nothing charged beyond the quota, images stored
    as asked (``OutputOptions``) under the job's id."""

    def __init__(self, output: OutputOptions = OutputOptions()):
        self.output = output

    def admit(self, session: Session, job: Job) -> None:
        return None

    def submit(self, engine: EngineClient, job: Job, on_progress) -> Awaitable[GenerationResult]:
        return engine.submit(job.id, job.request, on_progress)

    def store(self, store: ImageStore, job: Job, result: GenerationResult) -> list[ServedImage]:
        out, fmt = [], self.output.format
        scores = result.nsfw_scores or [None] * len(result.images)
        for image, seed, score in zip(result.images, result.seeds, scores):
            image_id = str(uuid.uuid4())
            if self.output.size is not None and image.size != self.output.size:
                image = fit(image, *self.output.size)
            data = encode_image(image, fmt, self.output.quality)
            key = f"{job.id}/{image_id}.{fmt}"
            store.put(key, data, CONTENT_TYPES[fmt])
            out.append(ServedImage(image_id, seed, data, CONTENT_TYPES[fmt], key, score))
        return out

    def settle(self, session: Session, job: Job, images: list[ServedImage]) -> None:
        return None

    def fail(self, session: Session, job: Job, error: str) -> None:
        return None

    def record_cancel(self, job: Job) -> bool:
        return True


@dataclass(eq=False)
class Pipeline:
    engine: EngineClient
    sessions: sessionmaker[Session]
    store: ImageStore
    signer: UrlSigner
    limits: Limits = Limits()
    quota: quotas.QuotaLimits = quotas.QuotaLimits()
    bus: EventBus = field(default_factory=EventBus)
    #: service/webhooks.Outbox: checks a job's webhook URL at admit, and writes its delivery in the
    #: same transaction as the job's final state (an event subscriber could lose it to a crash).
    outbox: Any = None

    def __post_init__(self) -> None:
        # Encoding and storing answers: off the event loop and the device threads, and on few threads
        # so that on a CPU box they never take more than a share of the cores from denoising.
        self._encoders = ThreadPoolExecutor(max(1, (os.cpu_count() or 2) // 4), thread_name_prefix="encode")
        # Job records are written by one thread, in order: a burst of requests does not contend for
        # the database's write lock, and a job's own writes cannot overtake each other.
        self._records = ThreadPoolExecutor(1, thread_name_prefix="job-records")
        self._live: dict[str, Job] = {}  # jobs executing in this process
        self._cancelled: OrderedDict[str, None] = OrderedDict()  # asked to stop (DELETE /v1/jobs/{id})

    def cancel(self, job_id: str) -> bool:
        """Stops a job before its next step: it ends ``cancelled``, refunded like any failure. True when
        it is executing in this process; otherwise it is stopped as soon as it would start here (a
        queued background job)."""
        self._cancelled[job_id] = None
        while len(self._cancelled) > MAX_CANCELLED:  # ids of jobs that never ran here
            self._cancelled.popitem(last=False)
        if job_id not in self._live:
            return False
        self.engine.cancel(job_id)  # False if not in the engine yet: the next progress callback sends it again
        return True

    def was_cancelled(self, job_id: str) -> bool:
        """``cancel`` was called for the job (while it is still known here)."""
        return job_id in self._cancelled

    def live_jobs(self, caller_id: int | None) -> list[Job]:
        """The caller's jobs executing in this process (queued in the engine or running), oldest first."""
        return [job for job in list(self._live.values()) if job.caller_id == caller_id]

    def close(self) -> None:
        self._encoders.shutdown(wait=False, cancel_futures=True)
        self._records.shutdown(wait=True)  # the last failures and finishes still reach the database

    def model_info(self, model_id: str):
        """The engine's ModelInfo for a configured model id (NotFound if it is not served)."""
        for m in self.engine.models():
            if m.id == model_id:
                return m
        raise NotFound(f"model {model_id!r} is not served here")

    def image_url(self, base_url: str, storage_key: str, ttl: int | None = None) -> str:
        """``ttl``: seconds the URL is valid; None: the signer's (PIXELSERVE_URL_TTL_SECONDS)."""
        return download_url(self.store, self.signer, base_url, storage_key, ttl)

    # -- 1 + 2: validate, check ------------------------------------------------------------------
    def validate(self, request: GenerationRequest) -> ValidRequest:
        """Field checks, then the model-aware ones; raises before anything is recorded or charged."""
        return validated(request, self.engine.models(), self.limits, self.engine.check)

    def check(self, request: GenerationRequest) -> GenerationRequest:
        return self.validate(request).request

    async def generate(self, request: GenerationRequest, *, dialect: str, key: Caller | None = None,
                       output: OutputOptions = OutputOptions(), record_prompt: bool = True,
                       record: dict | None = None, job_id: str | None = None) -> ServiceResult:
        """The whole path for a caller that waits. ``record_prompt=False`` keeps the prompts out of the
        job record (OctoAI's log_prompt); ``record``: more keys for the job record (OpenAI's ``user``);
        ``job_id``: the server's id for the job, chosen by a caller that watches its events."""
        valid = self.validate(request)
        job = await self.admit(valid, dialect=dialect, caller_id=key.id if key is not None else None,
                               policy=DirectPolicy(output), record_prompt=record_prompt, record=record,
                               job_id=job_id)
        return await self.execute(job)

    # -- 3: admit --------------------------------------------------------------------------------
    async def admit(self, valid: ValidRequest, *, dialect: str, caller_id: int | None, policy: JobPolicy,
                    record_prompt: bool = True, job_id: str | None = None, record: dict | None = None) -> Job:
        if not isinstance(valid, ValidRequest):
            raise TypeError("admit takes only a ValidRequest (Pipeline.validate)")
        job = Job(job_id or str(uuid.uuid4()), valid.request, dialect, caller_id, policy)
        options = job_options.current()
        if options is not None:
            if options.client_id is not None and not options.job_ids:  # a request's first job takes it
                job.client_id = options.client_id
            job.webhook_url = options.webhook_url
            if job.webhook_url is not None and self.outbox is not None:  # refused: nothing written
                await asyncio.to_thread(self.outbox.check_url, job.webhook_url, options.webhook_field)
        described = valid.request.describe()
        if not record_prompt:
            described.update({k: "[not logged]" for k in PROMPT_FIELDS if described.get(k) is not None})
        described.update(record or {})
        with timing.stage("admit"):
            await self._in_records(self._admit, job, described)
        if options is not None:
            options.job_ids.append(job.client_id or job.id)
        self._publish(job, "queued", queue_position=self.engine.health().queue_depth)
        return job

    def _admit(self, job: Job, described: dict) -> None:
        """The key's quota, then the job record and the policy's own records in one transaction."""
        if job.caller_id is not None:
            with self.sessions() as session:
                exhausted = quotas.consume(session, job.caller_id, job.id, self.quota)
            if exhausted:
                raise QuotaExceeded(f"quota per {exhausted} exceeded for this key",
                                    retry_after=quotas.seconds_until_next(exhausted))
        try:
            with self.sessions() as session:
                if job.client_id is not None and jobs.client_id_taken(session, job.caller_id, job.client_id):
                    raise Conflict(f"X-Job-Id {job.client_id!r} is already the id of another job of this key",
                                   field="X-Job-Id", location="header")
                jobs.create_job(session, job.id, dialect=job.dialect, model=job.request.model, request=described,
                                api_key_id=job.caller_id, commit=False, client_id=job.client_id,
                                webhook_url=job.webhook_url)
                job.admitted = job.policy.admit(session, job)
                session.commit()
        except Exception:
            with self.sessions() as session:
                quotas.release(session, job.id)
            raise

    # -- 4 to 7: submit, store, settle, record ---------------------------------------------------
    async def execute(self, job: Job) -> ServiceResult:
        self._live[job.id] = job
        try:
            return await self._execute(job)
        finally:
            self._live.pop(job.id, None)
            self._cancelled.pop(job.id, None)

    async def _execute(self, job: Job) -> ServiceResult:
        def on_progress(step: int, total: int, preview: bytes | None = None) -> None:
            if job.id in self._cancelled:
                self.engine.cancel(job.id)  # it reached the engine after the cancel did
            if not job.started:
                job.started = True
                self._in_records(self._db, jobs.mark_running, job.id)
                self._publish(job, "started")
            extra = {} if preview is None else {"preview": preview}  # the steps with a live preview (JPEG)
            self._publish(job, "progress", step=step, steps=total, **extra)

        try:
            if job.id in self._cancelled:
                raise Cancelled("cancelled by its caller")
            with timing.stage("engine"):
                result = await job.policy.submit(self.engine, job, on_progress)
            with timing.stage("store"):
                images = await asyncio.get_running_loop().run_in_executor(self._encoders, job.policy.store, self.store,
                                                                          job, result)
        except asyncio.CancelledError:
            if job.policy.record_cancel(job):
                # Whoever stopped waiting (a client that hung up, the shutdown drain) cancelled it.
                await asyncio.shield(self._record_failure(job, "cancelled", True))
            raise
        except PixelserveError as e:
            await self._record_failure(job, str(e), isinstance(e, Cancelled))
            raise
        except Exception as e:
            await self._record_failure(job, f"{type(e).__name__}: {e}", False)
            raise
        with timing.stage("finish"):
            await self._in_records(self._succeeded, job, images, result.timings_ms)
        self._publish(job, "finished", images=[{"key": im.storage_key, "seed": im.seed} for im in images],
                      timings_ms=dict(result.timings_ms))
        return ServiceResult(job_id=job.id, model=job.request.model, images=images, timings_ms=result.timings_ms)

    async def fail(self, job: Job, error: str) -> None:
        """Ends an admitted job as failed without running it (e.g. it outlived its attempts)."""
        await self._record_failure(job, error, False)

    async def _record_failure(self, job: Job, error: str, cancelled: bool) -> None:
        await self._in_records(self._failed, job, error, cancelled)
        self._publish(job, "cancelled" if cancelled else "failed", error=error)

    def _succeeded(self, job: Job, images: list[ServedImage], timings_ms: dict) -> None:
        with self.sessions() as session:
            job.policy.settle(session, job, images)
            if self.outbox is not None:
                self.outbox.write(session, job.id, "finished", timings_ms=dict(timings_ms),
                                  images=[{"key": im.storage_key, "seed": im.seed} for im in images])
            jobs.finish_job(session, job.id, [jobs.StoredImage(im.id, i, im.seed, im.storage_key, im.content_type)
                                              for i, im in enumerate(images)])

    def _failed(self, job: Job, error: str, cancelled: bool) -> None:
        """A failed or cancelled job is recorded, refunded by its policy, and does not count against
        the key's quota."""
        with self.sessions() as session:
            job.policy.fail(session, job, error)
            if self.outbox is not None:
                self.outbox.write(session, job.id, "cancelled" if cancelled else "failed", error=error)
            jobs.fail_job(session, job.id, error, cancelled=cancelled)
            quotas.release(session, job.id)

    # -- helpers ---------------------------------------------------------------------------------
    def _publish(self, job: Job, type: str, **data) -> None:
        self.bus.publish(type, job.id, dialect=job.dialect, model=job.request.model, caller_id=job.caller_id, **data)

    def record(self, fn, *args) -> Awaitable:
        """``fn(session, *args)`` on the job-records thread, after the writes queued before it; ``close``
        waits for it, so a write made while the server stops still reaches the database."""
        return self._in_records(self._db, fn, *args)

    def _in_records(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._records, fn, *args)

    def _db(self, fn, *args, **kwargs):
        with self.sessions() as session:
            return fn(session, *args, **kwargs)


async def cancel_on_disconnect(disconnected: Awaitable, work: Awaitable):
    """Run ``work``; cancel it (and so its engine job) as soon as ``disconnected`` completes, i.e. the
    client went away (http/route.client_gone). Both are awaited together, nothing is polled: polling
    every in-flight request several times a second took a large share of the event loop under bursts."""
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
