"""What the jobs API (http/jobs.py) tells a caller about its own jobs: their status, its list of them,
and cancelling one. The database has each job's record; the job stream (service/job_stream.py) has
what happened since, which is newer while the job runs (its step, its queue position)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.crud import jobs as crud
from pixelserve.db.models import Job as JobRow
from pixelserve.errors import Conflict, NotFound
from pixelserve.service.job_stream import JobLog, JobStream
from pixelserve.service.jobs import JobRunner
from pixelserve.service.pipeline import Pipeline

#: Ended states; the event that announces each.
FINAL_EVENT = {"succeeded": "finished", "failed": "failed", "cancelled": "cancelled"}
_RANK = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
#: How long DELETE waits for the job to stop before answering 202 (it still stops).
CANCEL_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class JobRecord:
    """A job's database record, read out of its session."""

    id: str  # the server's
    client_id: str | None  # the caller's own (X-Job-Id)
    status: str
    steps: int | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    images: tuple[tuple[str, int], ...]  # (storage key, seed)

    @property
    def shown_id(self) -> str:
        return self.client_id or self.id

    @classmethod
    def of(cls, row: JobRow) -> "JobRecord":
        steps = row.request.get("steps") if isinstance(row.request, dict) else None
        return cls(row.id, row.client_id, row.status, steps if isinstance(steps, int) else None,
                   row.created_at, row.started_at, row.finished_at, row.error,
                   tuple((im.storage_key, im.seed) for im in row.images))


def utc(value: datetime | float) -> datetime:
    """SQLite hands back naive datetimes, which are UTC here; floats are Unix seconds."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def iso(value: datetime | float | None) -> str | None:
    """ISO 8601 in UTC."""
    return None if value is None else utc(value).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def images_of(record: JobRecord, image_url: Callable[[str], str]) -> list[dict]:
    return [{"url": image_url(key), "seed": seed} for key, seed in record.images]


def view(record: JobRecord, log: JobLog | None, image_url: Callable[[str], str]) -> dict:
    """``GET /v1/jobs/{id}``'s body."""
    status = record.status
    if log is not None and log.status is not None and _RANK[log.status] > _RANK.get(status, 0):
        status = log.status  # the stream saw it start before its record was written
    steps = (log.steps if log is not None else None) or record.steps
    step = log.step if log is not None and log.step is not None else 0
    if status == "succeeded":
        step = steps
    started = utc(record.started_at).timestamp() if record.started_at is not None else None
    if log is not None and log.started_at is not None:
        started = log.started_at
    eta = None
    if status == "running" and step and steps and started is not None:
        eta = round((time.time() - started) / step * (steps - step), 1)  # the mean step so far
    return {
        "id": record.shown_id, "status": status,
        "queue_position": log.queue_position if status == "queued" and log is not None else None,
        "step": step, "steps": steps,
        "created_at": iso(record.created_at), "started_at": iso(record.started_at or started),
        "finished_at": iso(record.finished_at), "eta_seconds": eta, "error": record.error,
        "images": images_of(record, image_url),
    }


class JobQueries:
    def __init__(self, sessions: sessionmaker[Session], stream: JobStream, pipeline: Pipeline,
                 runner: JobRunner | None = None):
        self.sessions = sessions
        self.stream = stream
        self.pipeline = pipeline
        self.runner = runner

    def find(self, caller_id: int | None, job_id: str) -> JobRecord:
        """The caller's job by its id or the server's; NotFound for any other (never "running")."""
        with self.sessions() as session:
            row = crud.find_callers_job(session, caller_id, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            return JobRecord.of(row)

    def list(self, caller_id: int | None, limit: int, before: str | None = None) -> list[JobRecord]:
        with self.sessions() as session:
            cursor = None
            if before is not None:
                cursor = crud.find_callers_job(session, caller_id, before)
                if cursor is None:
                    raise NotFound(f"no job {before!r}", field="before", location="query")
            rows = crud.list_callers_jobs(session, caller_id, limit, cursor)
            return [JobRecord.of(r) for r in rows]

    async def cancel(self, caller_id: int | None, job_id: str) -> tuple[JobRecord, bool]:
        """Stops the caller's queued or running job; waits (up to CANCEL_WAIT_SECONDS) for it to end.
        Returns its record and whether it has ended. Conflict if it had ended already, or ended
        otherwise than cancelled (it finished in the meantime)."""
        record = await asyncio.to_thread(self.find, caller_id, job_id)
        if record.status in FINAL_EVENT:
            raise Conflict(f"job {job_id!r} has ended ({record.status}); there is nothing to cancel")
        if not self.pipeline.cancel(record.id):
            if record.status != "queued":
                raise Conflict(f"job {job_id!r} is not running in this server process; it cannot be cancelled here")
            if self.runner is not None:
                self.runner.run_now(record.id)  # a background job waiting in the durable queue ends now
        log = self.stream.watch(record.id)
        try:
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while log.final is None and (left := deadline - time.monotonic()) > 0:
                waker = log.waker
                try:
                    await asyncio.wait_for(waker.wait(), left)
                except TimeoutError:
                    break
        finally:
            self.stream.unwatch(log)
        record = await asyncio.to_thread(self.find, caller_id, job_id)
        if record.status in ("succeeded", "failed"):
            raise Conflict(f"job {job_id!r} {record.status} before it could be cancelled")
        return record, record.status == "cancelled"
