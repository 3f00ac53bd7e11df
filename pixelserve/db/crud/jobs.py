"""Job records: created queued, moved through running to one final state, never half-written."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from pixelserve.db.models import Job, JobImage, utcnow

FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class StoredImage:
    id: str
    index: int
    seed: int
    storage_key: str
    content_type: str


def create_job(session: Session, job_id: str, *, dialect: str, model: str, request: dict,
               api_key_id: int | None, commit: bool = True, client_id: str | None = None,
               webhook_url: str | None = None) -> None:
    """``commit=False``: part of a larger admission transaction (the caller commits)."""
    session.add(Job(id=job_id, dialect=dialect, model=model, status="queued", progress=0.0,
                    request=request, api_key_id=api_key_id, attempts=0, client_id=client_id,
                    webhook_url=webhook_url))
    if commit:
        session.commit()


def mark_running(session: Session, job_id: str, worker_id: str | None = None) -> None:
    job = session.get(Job, job_id)
    if job is None or job.status != "queued":  # progress can arrive after the job settled
        return
    job.status, job.started_at, job.worker_id = "running", utcnow(), worker_id
    job.attempts += 1
    session.commit()


def set_progress(session: Session, job_id: str, progress: float) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.status not in FINAL:
        job.progress = progress
        session.commit()


def finish_job(session: Session, job_id: str, images: list[StoredImage]) -> None:
    """Succeeded, with all its images, in one transaction (with what the session holds already)."""
    job = session.get(Job, job_id)
    if job is None:  # a Studio job admitted before Studio jobs had job records
        session.commit()
        return
    for im in images:
        session.add(JobImage(id=im.id, job_id=job_id, index=im.index, seed=im.seed,
                             storage_key=im.storage_key, content_type=im.content_type))
    job.status, job.progress, job.finished_at = "succeeded", 1.0, utcnow()
    session.commit()


def fail_job(session: Session, job_id: str, error: str, *, cancelled: bool = False) -> None:
    job = session.get(Job, job_id)
    if job is None or job.status in FINAL:
        session.commit()  # what the session holds already (a policy's refunds) is written all the same
        return
    job.status = "cancelled" if cancelled else "failed"
    job.error, job.finished_at = error, utcnow()
    session.commit()


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def client_id_taken(session: Session, api_key_id: int | None, client_id: str) -> bool:
    return session.scalar(select(Job.id).where(Job.api_key_id == api_key_id, Job.client_id == client_id)
                          .limit(1)) is not None


def find_callers_job(session: Session, api_key_id: int | None, job_id: str) -> Job | None:
    """The caller's job by the id it knows it by: its own X-Job-Id, else the server's id. Another
    key's job is None, exactly like a job that does not exist."""
    job = session.scalar(select(Job).where(Job.api_key_id == api_key_id, Job.client_id == job_id).limit(1))
    if job is None:
        job = session.get(Job, job_id)
    if job is None or job.api_key_id != api_key_id:
        return None
    return job


def list_callers_jobs(session: Session, api_key_id: int | None, limit: int, before: Job | None = None) -> list[Job]:
    """The caller's jobs, newest first; ``before``: only those older than that job (the page after it)."""
    query = select(Job).where(Job.api_key_id == api_key_id)
    if before is not None:
        query = query.where(or_(Job.created_at < before.created_at,
                                and_(Job.created_at == before.created_at, Job.id < before.id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).options(selectinload(Job.images))
    return list(session.scalars(query))
