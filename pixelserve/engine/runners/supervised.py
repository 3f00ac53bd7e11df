"""The engine in a supervised worker process: a crash (kill -9, a segfault in a CUDA kernel, the
OOM killer) takes down the worker, never the API server, and loses no job.

The API process keeps every job it handed over until the worker answers. When the worker dies,
the supervisor starts a new one and hands each unanswered job over again, once
(``max_attempts``); a job whose worker dies twice fails with ``EngineFailure`` (the service then
records it failed and releases what it charged). Jobs are answered exactly once, so nothing is
charged twice. Inside the worker runs the ordinary ``LocalEngine`` (queue, batching, devices).
The model checks run in the API process (``check``), with the tokenizers the worker sends once its
models are loaded (``text_infos`` in the ready message), so the API process never imports torch.

Jobs are held on leases (``lease_s``): a running job's lease is renewed by each denoising step it
reports, a job waiting in the worker's queue by the worker's heartbeat. A worker that is alive but
hung (a stuck kernel, a stopped process) lets a lease run out; the supervisor then kills it, and
the usual death path hands its jobs over.

Messages over a ``multiprocessing`` pipe (spawn context: no CUDA state is forked):
parent -> worker ``("submit", job_id, request)``, ``("cancel", job_id)``, ``("stop",)``;
worker -> parent ``("ready", error, text_infos)``, ``("progress", job_id, step, total, preview)``
(preview: JPEG bytes or None), ``("heartbeat", [ids of jobs waiting in its queue], device memory)``,
``("done", job_id, result)``, ``("error", job_id, *pack(error))`` (runners/errors.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import GenerationRequest, GenerationResult
from pixelserve.engine import checks
from pixelserve.engine.client import EngineHealth, ModelInfo, ProgressCallback, report
from pixelserve.engine.runners.errors import pack, unpack
from pixelserve.errors import Cancelled, EngineFailure, NotReady, Overloaded

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future
    on_progress: ProgressCallback | None
    attempts: int = 1
    sent_to: int = field(default=0)  # the worker generation it was handed to
    lease_until: float = 0.0  # time.monotonic() by which the worker must show progress on it


class SupervisedEngine:
    def __init__(self, specs: dict[str, ModelSpec], cache_dir: Path, *, max_queue: int = 64,
                 max_attempts: int = 2, lease_s: float = 300.0, **engine_kwargs):
        self.specs = dict(specs)
        self.cache_dir = Path(cache_dir)
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.heartbeat_s = min(10.0, max(0.1, lease_s / 5))
        self.engine_kwargs = dict(engine_kwargs, max_queue=max_queue)
        self._ctx = multiprocessing.get_context("spawn")
        self._pending: dict[str, _Pending] = {}
        self._proc = None
        self._conn = None
        self._generation = 0
        self._ready = False
        self._stopping = False
        self._loading_error: str | None = None
        self._text_info: dict = {}  # model id -> checks.TextInfo, sent by the worker once it is ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_event: asyncio.Event | None = None
        self._send_lock = threading.Lock()
        self._watchdog: asyncio.Task | None = None
        self._device_memory: dict = {}  # the worker's, from its last heartbeat (engine/runners/devices.py)
        self.restarts = 0
        self.lease_expiries = 0  # workers killed because a job's lease ran out

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready_event = asyncio.Event()
        self._spawn()
        self._watchdog = asyncio.create_task(self._watch_leases(), name="engine-leases")

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        self._generation += 1
        self._ready = False
        self._ready_event.clear()
        self._device_memory = {}  # a dead worker's reading is no reading
        self._conn = parent
        self._proc = self._ctx.Process(target=_worker_main, name=f"pixelserve-engine-{self._generation}", daemon=True,
                                       args=(child, self.specs, self.cache_dir, self.engine_kwargs, self.heartbeat_s))
        self._proc.start()
        child.close()
        threading.Thread(target=self._read, args=(parent, self._generation), daemon=True,
                         name=f"engine-reader-{self._generation}").start()

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(Cancelled("server shutting down"))
        self._send(("stop",))
        if self._proc is not None:
            await asyncio.to_thread(self._proc.join, 30)
            if self._proc.is_alive():
                self._proc.kill()

    # -- jobs --------------------------------------------------------------------------------
    def check(self, request: GenerationRequest) -> None:
        """The model checks, here in the API process, with the tokenizers the worker loaded."""
        checks.check_model(request, self.specs, self._text_info)

    async def submit(self, job_id: str, request: GenerationRequest,
                     on_progress: ProgressCallback | None = None) -> GenerationResult:
        if not self._ready:
            raise NotReady(self._loading_error or "models are still loading; retry shortly")
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"queue full ({self.max_queue} jobs waiting); retry later")
        pending = _Pending(request, self._loop.create_future(), on_progress)
        self._pending[job_id] = pending
        self._hand_over(job_id, pending)
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self.cancel(job_id)
            raise
        finally:
            self._pending.pop(job_id, None)

    async def postprocess(self, job_id: str, request: GenerationRequest, image) -> GenerationResult:
        return await self.submit(job_id, request.with_(task="post", init_image=image))

    def cancel(self, job_id: str) -> bool:
        if job_id not in self._pending:
            return False
        self._send(("cancel", job_id))
        return True

    def health(self) -> EngineHealth:
        return EngineHealth(ready=self._ready, devices=("worker process",), queue_depth=len(self._pending),
                            queue_capacity=self.max_queue, running=len(self._pending),
                            loading_error=self._loading_error,
                            detail={"worker_pid": self.worker_pid, "restarts": self.restarts})

    def device_memory(self) -> dict[str, dict[str, int]]:
        """The worker's devices' memory as of its last heartbeat (at most ``heartbeat_s`` old)."""
        return self._device_memory

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.of(s, loaded=self._ready) for s in self.specs.values()]

    # -- leases ------------------------------------------------------------------------------
    def _hand_over(self, job_id: str, pending: _Pending) -> None:
        pending.sent_to = self._generation
        pending.lease_until = time.monotonic() + self.lease_s
        self._send(("submit", job_id, pending.request))

    def expired_leases(self, now: float) -> list[str]:
        """Jobs the current worker holds whose lease ran out by ``now`` (time.monotonic())."""
        if not self._ready or self._proc is None:
            return []
        return [job_id for job_id, p in self._pending.items()
                if p.sent_to == self._generation and not p.future.done() and p.lease_until < now]

    async def _watch_leases(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.heartbeat_s))
            expired = self.expired_leases(time.monotonic())
            if expired:
                log.error("engine worker %s shows no progress on %s for %g s: killing it", self._proc.pid,
                          ", ".join(expired), self.lease_s)
                self.lease_expiries += 1
                self._ready = False  # until the replacement is ready; the reader sees the death
                self._proc.kill()

    # -- the pipe ----------------------------------------------------------------------------
    def _send(self, message: tuple) -> None:
        with self._send_lock:
            try:
                self._conn.send(message)
            except (OSError, ValueError, BrokenPipeError):  # the worker is gone: the reader restarts it
                pass

    def _read(self, conn, generation: int) -> None:
        """Reader thread: hands each message to the event loop; on EOF the worker has died."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._loop.call_soon_threadsafe(self._worker_died, generation)
                return
            self._loop.call_soon_threadsafe(self._on_message, message)

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            self._loading_error = message[1]
            self._text_info = message[2]  # the parent's check() runs the model checks with these
            self._ready = message[1] is None
            self._ready_event.set()
            for job_id, pending in self._pending.items():  # jobs waiting for a restarted worker
                if pending.sent_to != self._generation and not pending.future.done():
                    self._hand_over(job_id, pending)
            return
        if kind == "heartbeat":
            renewed = time.monotonic() + self.lease_s
            for job_id in message[1]:
                if job_id in self._pending:
                    self._pending[job_id].lease_until = renewed
            if len(message) > 2:
                self._device_memory = message[2]
            return
        pending = self._pending.get(message[1])
        if pending is None or pending.future.done():
            return
        if kind == "progress":
            pending.lease_until = time.monotonic() + self.lease_s
            report(pending.on_progress, message[2], message[3], message[4] if len(message) > 4 else None)
        elif kind == "done":
            pending.future.set_result(message[2])
        elif kind == "error":
            pending.future.set_exception(unpack(message[2:]))

    def _worker_died(self, generation: int) -> None:
        if generation != self._generation or self._stopping:
            return
        code = self._proc.exitcode if self._proc is not None else None
        log.error("engine worker process died (exit code %s); starting a new one", code)
        self.restarts += 1
        for job_id, pending in list(self._pending.items()):
            if pending.future.done():
                continue
            if pending.attempts >= self.max_attempts:
                pending.future.set_exception(EngineFailure(
                    f"the engine worker died {pending.attempts} times running this job"))
            else:
                pending.attempts += 1  # handed to the new worker once it is ready
        self._spawn()


# -- the worker process --------------------------------------------------------------------------
def _worker_main(conn, specs: dict[str, ModelSpec], cache_dir: Path, engine_kwargs: dict,
                 heartbeat_s: float = 1.0) -> None:
    asyncio.run(_worker(conn, specs, cache_dir, engine_kwargs, heartbeat_s))


async def _worker(conn, specs, cache_dir, engine_kwargs, heartbeat_s: float = 1.0) -> None:
    from pixelserve.engine.runners.local import LocalEngine

    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    stop = asyncio.Event()

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    engine = LocalEngine(specs, cache_dir, **engine_kwargs)
    await engine.start()
    await engine.wait_ready()
    send(("ready", engine.health().loading_error, engine.text_infos()))

    async def run(job_id: str, request: GenerationRequest) -> None:
        try:
            result = await engine.submit(job_id, request, lambda s, t, p=None: send(("progress", job_id, s, t, p)))
            send(("done", job_id, result))
        except Exception as e:  # noqa: BLE001 - reported to the parent, the worker goes on
            send(("error", job_id, *pack(e)))

    def dispatch(message: tuple) -> None:
        if message[0] == "submit":
            loop.create_task(run(message[1], message[2]))
        elif message[0] == "cancel":
            engine.cancel(message[1])
        elif message[0] == "stop":
            stop.set()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                loop.call_soon_threadsafe(stop.set)
                return
            loop.call_soon_threadsafe(dispatch, message)

    async def heartbeat() -> None:  # renews the leases of jobs waiting in this worker's queue
        while True:
            await asyncio.sleep(heartbeat_s)
            send(("heartbeat", engine.waiting(), engine.device_memory()))

    threading.Thread(target=read, daemon=True).start()
    beats = asyncio.create_task(heartbeat())
    await stop.wait()
    beats.cancel()
    await engine.stop()
