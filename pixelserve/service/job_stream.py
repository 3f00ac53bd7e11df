"""Each job's events, kept in memory for its progress stream (http/jobs_events.py) and its status.

A bus subscriber (service/events.py): it appends every event to its job's log, wakes the streams
waiting on that job, and keeps the job's current state (status, step, steps, queue position). A
stream that reconnects with ``Last-Event-ID`` gets the events after it from the log. An ended
job's log is kept ``keep_seconds`` (PIXELSERVE_JOB_EVENTS_KEEP_SECONDS), then dropped; at most
``max_ended`` ended logs are kept at once (the oldest go first), and of the preview images only a
job's latest one, and none once it has ended: memory stays bounded by the jobs in flight.

A waiting job's ``queued`` is re-sent when its position changes: when a job ahead of it leaves
the queue (starts or ends), every job queued after that one moves up by one. No engine is asked;
the positions count the jobs this process saw queued ahead (the engine's queue depth at admission).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from pixelserve.service.events import FINAL_EVENTS, EventBus, JobEvent

#: Ended jobs whose events are kept at once, at most (the oldest dropped first).
MAX_ENDED = 10_000

#: A job's status as the jobs API names it, by the event that put it there.
STATUS_OF = {"queued": "queued", "started": "running", "progress": "running", "finished": "succeeded",
             "failed": "failed", "cancelled": "cancelled"}


@dataclass
class JobLog:
    """One job's events in order (previews left out) and what they say of it now."""

    job_id: str
    events: list[JobEvent] = field(default_factory=list)
    status: str | None = None  # None: no event seen yet (a stream waits for the job's first)
    queue_position: int | None = None
    step: int | None = None
    steps: int | None = None
    started_at: float | None = None  # Unix seconds, from the started event
    ended_at: float | None = None  # monotonic, for expiry
    preview: tuple[int, bytes] | None = None  # (seq of its progress event, JPEG): the latest only
    watchers: int = 0  # streams reading it
    waker: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    @property
    def final(self) -> JobEvent | None:
        return self.events[-1] if self.events and self.events[-1].type in FINAL_EVENTS else None

    def after(self, seq: int) -> list[JobEvent]:
        return [e for e in self.events if e.seq > seq]

    def preview_of(self, event: JobEvent) -> bytes | None:
        return self.preview[1] if self.preview is not None and self.preview[0] == event.seq else None

    def wake(self) -> None:
        self.waker.set()
        self.waker = asyncio.Event()  # the next wait waits for the next event


class JobStream:
    def __init__(self, bus: EventBus, keep_seconds: float, *, max_ended: int = MAX_ENDED,
                 clock: Callable[[], float] = time.monotonic):
        self._bus = bus
        self.keep_seconds = keep_seconds
        self.max_ended = max_ended
        self._clock = clock
        self._logs: dict[str, JobLog] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()  # job id -> when it ended, oldest first
        self._waiting: OrderedDict[str, JobLog] = OrderedDict()  # queued jobs, in the order they came

    def attach(self) -> "JobStream":
        self._bus.subscribe("job-stream", self.handle, maxsize=10_000)  # every step of many jobs; handling is cheap
        return self

    # -- the subscriber ------------------------------------------------------------------------
    def handle(self, event: JobEvent) -> None:
        log = self._logs.get(event.job_id)
        if log is None:
            log = self._logs[event.job_id] = JobLog(event.job_id)
        if log.final is not None:
            return  # nothing follows a final event
        if event.type == "progress" and "preview" in event.data:
            data = dict(event.data)
            log.preview = (event.seq, data.pop("preview"))
            event = dataclasses.replace(event, data=data)
        log.events.append(event)
        log.status = STATUS_OF[event.type]
        if event.type == "queued":
            log.queue_position = event.data.get("queue_position")
            self._waiting[event.job_id] = log
        elif event.type == "started":
            log.started_at = event.at
        elif event.type == "progress":
            log.step, log.steps = event.data.get("step"), event.data.get("steps")
        if event.type != "queued":
            log.queue_position = None
            self._left_queue(event)
        if event.type in FINAL_EVENTS:
            log.preview = None  # the images are there now
            log.ended_at = self._clock()
            self._ended[event.job_id] = log.ended_at
        log.wake()
        self._expire()

    def _left_queue(self, event: JobEvent) -> None:
        """A job started or ended: each job queued after it is one place nearer; each is told so."""
        if event.job_id not in self._waiting:
            return
        behind = False
        for job_id in list(self._waiting):
            if job_id == event.job_id:
                del self._waiting[job_id]
                behind = True
                continue
            log = self._waiting[job_id]
            if not behind or not log.queue_position:
                continue
            # The seq is the bus's: taken only while this log has seen all of the job's events so far.
            last = log.events[-1]
            seq = self._bus.reserve_seq(job_id, last.seq)
            if seq is None:
                continue  # its own next event is on the way; it says more than a position would
            log.queue_position -= 1
            log.events.append(JobEvent("queued", job_id, last.dialect, last.model, last.caller_id, seq,
                                       data={"queue_position": log.queue_position}))
            log.wake()

    def _expire(self) -> None:
        now = self._clock()
        while self._ended:
            job_id, ended = next(iter(self._ended.items()))
            if now - ended < self.keep_seconds and len(self._ended) <= self.max_ended:
                break
            del self._ended[job_id]
            log = self._logs.pop(job_id, None)
            if log is not None:
                log.wake()  # a stream still reading it finishes from the database

    # -- readers -------------------------------------------------------------------------------
    def log(self, job_id: str) -> JobLog | None:
        """The job's log while its events are kept; None for a job this process saw no event of."""
        self._expire()
        log = self._logs.get(job_id)
        return log if log is not None and log.status is not None else None

    def watch(self, job_id: str) -> JobLog:
        """The job's log for a stream, made empty if no event of it came yet (its first one fills it);
        ``unwatch`` when the stream ends."""
        log = self._logs.get(job_id)
        if log is None:
            log = self._logs[job_id] = JobLog(job_id)
        log.watchers += 1
        return log

    def unwatch(self, log: JobLog) -> None:
        log.watchers -= 1
        if log.watchers <= 0 and log.status is None and self._logs.get(log.job_id) is log:
            del self._logs[log.job_id]  # a job that never published here (another replica's): not kept

    def __len__(self) -> int:
        return len(self._logs)
