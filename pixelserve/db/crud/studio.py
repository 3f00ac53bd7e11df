"""Studio records: jobs and their images, bookmarks, styles, collections.

Job and image writes do not commit: the service commits them together with the ledger rows
that pay for them (db/crud/credits.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import utcnow
from pixelserve.db.models_studio import StudioBookmark, StudioCollection, StudioImage, StudioJob, StudioStyle

#: How long a claimed job stays with its replica without a renewal (settings.job_lease_seconds).
DEFAULT_LEASE_SECONDS = 60.0


# -- jobs and images ---------------------------------------------------------------------------
def add_job(session: Session, job_id: str, owner_id: int, kind: str, plan: dict, cost_per_image: int,
            images: list[dict]) -> list[StudioImage]:
    session.add(StudioJob(id=job_id, owner_id=owner_id, kind=kind, status="PENDING", plan=plan,
                          cost_per_image=cost_per_image, attempts=0, created_at=utcnow()))
    session.flush()  # the job row first: the images refer to it
    rows = [StudioImage(job_id=job_id, owner_id=owner_id, status="PENDING", created_at=utcnow(), **im)
            for im in images]
    session.add_all(rows)
    session.flush()  # assigns the image ids
    return rows


def claim(session: Session, job_id: str, worker_id: str | None = None,
          lease_seconds: float = DEFAULT_LEASE_SECONDS) -> StudioJob | None:
    """PENDING -> IN_PROGRESS on a lease, once: a job already claimed (or finished) returns None.

    One conditional UPDATE: two replicas claiming the same job cannot both win (PostgreSQL re-checks
    the WHERE after waiting for the other's row lock; SQLite runs one writer at a time).
    """
    now = utcnow()
    done = session.execute(update(StudioJob).where(StudioJob.id == job_id, StudioJob.status == "PENDING")
                           .values(_claimed(now, worker_id, lease_seconds)))
    if done.rowcount != 1:
        session.rollback()
        return None
    return _started(session, job_id)


def claim_next(session: Session, worker_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> StudioJob | None:
    """The oldest job nobody runs (PENDING, or IN_PROGRESS on an expired lease: its replica died),
    claimed for ``worker_id``; None when there is none.

    ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): replicas polling at once each take a different job
    instead of queueing on the same row. SQLite has no row locks; the single UPDATE statement is
    atomic there. The outer WHERE repeats the condition, so a job finished meanwhile is not taken.
    """
    now = utcnow()
    free = or_(StudioJob.status == "PENDING",
               and_(StudioJob.status == "IN_PROGRESS", StudioJob.lease_expires_at < now))
    oldest = (select(StudioJob.id).where(free).order_by(StudioJob.created_at).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    job_id = session.execute(update(StudioJob).where(StudioJob.id == oldest, free)
                             .values(_claimed(now, worker_id, lease_seconds)).returning(StudioJob.id)).scalar()
    if job_id is None:
        session.rollback()
        return None
    return _started(session, job_id)


def _claimed(now: datetime, worker_id: str | None, lease_seconds: float) -> dict:
    return dict(status="IN_PROGRESS", started_at=now, attempts=StudioJob.attempts + 1, worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds))


def _started(session: Session, job_id: str) -> StudioJob:
    session.execute(update(StudioImage).where(StudioImage.job_id == job_id).values(status="IN_PROGRESS"))
    session.commit()
    return session.get(StudioJob, job_id, populate_existing=True)


def renew_leases(session: Session, worker_id: str, job_ids: list[str],
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> int:
    """Extend the leases ``worker_id`` holds on these running jobs; the number renewed."""
    if not job_ids:
        return 0
    done = session.execute(update(StudioJob).where(
        StudioJob.id.in_(job_ids), StudioJob.worker_id == worker_id, StudioJob.status == "IN_PROGRESS")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)))
    session.commit()
    return done.rowcount


def release_lease(session: Session, job_id: str, worker_id: str | None) -> None:
    """A job this replica stopped running without finishing (shutdown, a crash while recording):
    its lease ends now, so the next start or another replica takes it over at once."""
    session.execute(update(StudioJob).where(
        StudioJob.id == job_id, StudioJob.worker_id == worker_id, StudioJob.status == "IN_PROGRESS")
        .values(lease_expires_at=utcnow()))
    session.commit()


def requeue_interrupted(session: Session) -> list[str]:
    """At start: jobs left IN_PROGRESS whose lease has ended (their replica stopped or died; no lease:
    recorded before leases existed) go back to PENDING; all PENDING ids, oldest first. Jobs another
    live replica is running keep their lease."""
    lapsed = and_(StudioJob.status == "IN_PROGRESS",
                  or_(StudioJob.lease_expires_at.is_(None), StudioJob.lease_expires_at < utcnow()))
    session.execute(update(StudioJob).where(lapsed).values(status="PENDING"))
    pending = select(StudioJob.id).where(StudioJob.status == "PENDING")
    session.execute(update(StudioImage).where(StudioImage.job_id.in_(pending)).values(status="PENDING"))
    session.commit()
    return list(session.scalars(pending.order_by(StudioJob.created_at)))


def get_job(session: Session, job_id: str) -> StudioJob | None:
    return session.get(StudioJob, job_id)


def job_images(session: Session, job_id: str) -> list[StudioImage]:
    return list(session.scalars(select(StudioImage).where(StudioImage.job_id == job_id).order_by(StudioImage.index)))


def finish_job(session: Session, job_id: str, error: str | None) -> StudioJob:
    job = session.get(StudioJob, job_id)
    job.status = "FAILED" if error else "COMPLETED"
    job.error, job.finished_at = error, utcnow()
    return job


def get_image(session: Session, image_id: int) -> StudioImage | None:
    return session.get(StudioImage, image_id)


def images_by_ids(session: Session, ids: list[int]) -> list[StudioImage]:
    rows = {r.id: r for r in session.scalars(select(StudioImage).where(StudioImage.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def list_group(session: Session, owner_id: int, group_id: str, limit: int = 100) -> list[StudioImage]:
    return list(session.scalars(select(StudioImage).where(
        StudioImage.owner_id == owner_id, StudioImage.group_id == group_id, StudioImage.parent_id.is_(None))
        .order_by(StudioImage.id).limit(limit)))


def upscales_of(session: Session, image_ids: list[int]) -> dict[int, list[StudioImage]]:
    out: dict[int, list[StudioImage]] = {i: [] for i in image_ids}
    for row in session.scalars(select(StudioImage).where(StudioImage.parent_id.in_(image_ids))
                               .order_by(StudioImage.id)):
        out[row.parent_id].append(row)
    return out


# -- bookmarks ---------------------------------------------------------------------------------
def bookmarks_of(session: Session, image_ids: list[int]) -> dict[int, list[StudioBookmark]]:
    out: dict[int, list[StudioBookmark]] = {i: [] for i in image_ids}
    for row in session.scalars(select(StudioBookmark).where(StudioBookmark.image_id.in_(image_ids))
                               .order_by(StudioBookmark.id)):
        out[row.image_id].append(row)
    return out


def set_bookmark(session: Session, image_id: int, owner_id: int, on: bool) -> None:
    exists = session.scalars(select(StudioBookmark).where(
        StudioBookmark.image_id == image_id, StudioBookmark.owner_id == owner_id)).first()
    if on and exists is None:
        session.add(StudioBookmark(image_id=image_id, owner_id=owner_id, created_at=utcnow()))
    elif not on and exists is not None:
        session.delete(exists)
    session.commit()


# -- styles and collections ---------------------------------------------------------------------
def list_styles(session: Session, owner_id: int) -> list[StudioStyle]:
    return list(session.scalars(select(StudioStyle).where(
        (StudioStyle.owner_id.is_(None)) | (StudioStyle.owner_id == owner_id)).order_by(StudioStyle.id)))


def get_style(session: Session, owner_id: int, style_id: int) -> StudioStyle | None:
    """A built-in style or one of the owner's; another owner's style does not exist for the caller."""
    row = session.get(StudioStyle, style_id)
    if row is None or row.owner_id not in (None, owner_id):
        return None
    return row


def save_style(session: Session, owner_id: int, values: dict, style_id: int | None = None) -> StudioStyle | None:
    """Create (style_id None) or update one of the owner's styles; built-ins are not the owner's."""
    return _save(session, StudioStyle, owner_id, values, style_id)


def delete_style(session: Session, owner_id: int, style_id: int) -> bool:
    row = session.get(StudioStyle, style_id)
    if row is None or row.owner_id != owner_id:
        return False
    session.execute(update(StudioCollection).where(StudioCollection.style_id == style_id).values(style_id=None))
    session.delete(row)
    session.commit()
    return True


def list_collections(session: Session, owner_id: int) -> list[StudioCollection]:
    return list(session.scalars(select(StudioCollection).where(StudioCollection.owner_id == owner_id)
                                .order_by(StudioCollection.id)))


def get_collection(session: Session, owner_id: int, collection_id: int) -> StudioCollection | None:
    row = session.get(StudioCollection, collection_id)
    return row if row is not None and row.owner_id == owner_id else None


def save_collection(session: Session, owner_id: int, values: dict,
                    collection_id: int | None = None) -> StudioCollection | None:
    return _save(session, StudioCollection, owner_id, values, collection_id)


def _save(session: Session, model: type, owner_id: int, values: dict, row_id: int | None):
    """Create (row_id None) or update one of the owner's rows; None when the owner has no such row."""
    if row_id is None:
        row = model(owner_id=owner_id, created_at=utcnow(), **values)
        session.add(row)
    else:
        row = session.get(model, row_id)
        if row is None or row.owner_id != owner_id:
            return None
        for k, v in values.items():
            setattr(row, k, v)
    session.commit()
    return row


def delete_collection(session: Session, owner_id: int, collection_id: int) -> bool:
    done = session.execute(delete(StudioCollection).where(StudioCollection.id == collection_id,
                                                          StudioCollection.owner_id == owner_id))
    session.commit()
    return done.rowcount == 1
