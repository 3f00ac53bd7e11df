"""The job event bus: every job publishes what happens to it, whatever its dialect or engine.

Cross-cutting features (progress streams, webhooks, metrics, logs) subscribe here instead of being
written into each path. Publishing never blocks and never fails the job: each subscriber has its own
bounded queue drained by its own task; when a subscriber falls behind, its newest events are dropped
and counted, and a subscriber that raises is logged and counted, never re-raised into the job.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal

log = logging.getLogger(__name__)

EventType = Literal["queued", "started", "progress", "finished", "failed", "cancelled"]
#: The types that end a job: exactly one of them is published per job, last.
FINAL_EVENTS = ("finished", "failed", "cancelled")

Handler = Callable[["JobEvent"], Awaitable[None] | None]


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to a job. ``data`` by type:

    - queued: ``queue_position`` (jobs ahead of it in the engine's queue when it was submitted)
    - started: nothing
    - progress: ``step``, ``steps`` (and ``preview``: image bytes, when a preview was made)
    - finished: ``images`` ([{key, seed}]), ``timings_ms``
    - failed / cancelled: ``error``
    """

    type: EventType
    job_id: str
    dialect: str
    model: str
    caller_id: int | None
    seq: int  # 1, 2, ... within the job: a stream's event id
    at: float = field(default_factory=time.time)  # Unix seconds
    data: dict[str, Any] = field(default_factory=dict)


class _Subscriber:
    def __init__(self, name: str, handler: Handler, maxsize: int):
        self.name = name
        self.handler = handler
        self.maxsize = maxsize
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.errors = 0
        self.task: asyncio.Task | None = None

    async def drain(self) -> None:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            try:
                out = self.handler(event)
                if inspect.isawaitable(out):
                    await out
            except Exception:
                self.errors += 1
                log.exception("event subscriber %s failed on %s of job %s", self.name, event.type, event.job_id)


class EventBus:
    """Publish on the event loop (engine progress callbacks already run there); subscribers attach in
    ``create_app``."""

    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seqs: dict[str, int] = {}  # a live job's last seq

    def subscribe(self, name: str, handler: Handler, *, maxsize: int = 1000) -> None:
        """``handler(event)``, sync or async, runs in the subscriber's own task, one event at a time."""
        if any(s.name == name for s in self._subscribers):
            raise ValueError(f"an event subscriber named {name!r} is attached already")
        sub = _Subscriber(name, handler, maxsize)
        self._subscribers.append(sub)
        if self._loop is not None:
            sub.task = self._loop.create_task(sub.drain(), name=f"events-{name}")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sub in self._subscribers:
            if sub.task is None:
                sub.queue = asyncio.Queue(sub.maxsize)  # bound to this loop (an app can be started again)
                sub.task = self._loop.create_task(sub.drain(), name=f"events-{sub.name}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Lets each subscriber finish what it has queued (up to ``timeout_s``), then stops it."""
        tasks = []
        for sub in self._subscribers:
            if sub.task is None:
                continue
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.task.cancel()
            tasks.append(sub.task)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self._subscribers:
            sub.task = None
        self._loop = None

    def publish(self, type: EventType, job_id: str, *, dialect: str, model: str, caller_id: int | None,
                **data: Any) -> JobEvent:
        """Hands the event to every subscriber without waiting for any; call on the event loop."""
        seq = self._seqs.get(job_id, 0) + 1
        if type in FINAL_EVENTS:
            self._seqs.pop(job_id, None)
        else:
            self._seqs[job_id] = seq
        event = JobEvent(type, job_id, dialect, model, caller_id, seq, data=data)
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1
        return event

    def reserve_seq(self, job_id: str, last_seen: int) -> int | None:
        """The next seq of a live job for an event a subscriber makes itself (a progress stream's
        re-sent queue position), only if ``last_seen`` is the job's latest: None once it moved on or ended."""
        if self._seqs.get(job_id) != last_seen:
            return None
        self._seqs[job_id] = last_seen + 1
        return last_seen + 1

    def stats(self) -> dict[str, dict[str, int]]:
        """Per subscriber: events waiting, dropped (queue full) and handler errors."""
        return {s.name: {"waiting": s.queue.qsize(), "dropped": s.dropped, "errors": s.errors}
                for s in self._subscribers}


def log_finished(event: JobEvent) -> None:
    """The built-in subscriber: one log line per ended job."""
    if event.type not in FINAL_EVENTS:
        return
    if event.type == "finished":
        timings = " ".join(f"{k}={v:.0f}ms" for k, v in event.data.get("timings_ms", {}).items())
        log.info("job %s finished: dialect=%s model=%s images=%d %s", event.job_id, event.dialect, event.model,
                 len(event.data.get("images", ())), timings)
    else:
        log.info("job %s %s: dialect=%s model=%s error=%s", event.job_id, event.type, event.dialect, event.model,
                 event.data.get("error"))
