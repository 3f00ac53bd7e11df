"""Studio records: jobs and their images, bookmarks, styles, collections.

Job and image writes do not commit: the service commits them together with the ledger rows
that pay for them (db/crud/credits.py).
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import utcnow
from pixelserve.db.models_studio import StudioBookmark, StudioCollection, StudioImage, StudioJob, StudioStyle


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


def claim(session: Session, job_id: str) -> StudioJob | None:
    """PENDING -> IN_PROGRESS, once: a job already claimed (or finished) returns None."""
    now = utcnow()
    done = session.execute(update(StudioJob).where(StudioJob.id == job_id, StudioJob.status == "PENDING")
                           .values(status="IN_PROGRESS", started_at=now, attempts=StudioJob.attempts + 1))
    if done.rowcount != 1:
        session.rollback()
        return None
    session.execute(update(StudioImage).where(StudioImage.job_id == job_id).values(status="IN_PROGRESS"))
    session.commit()
    return session.get(StudioJob, job_id)


def requeue_interrupted(session: Session) -> list[str]:
    """At start: jobs left IN_PROGRESS by a stopped server go back to PENDING; all PENDING ids, oldest first."""
    session.execute(update(StudioJob).where(StudioJob.status == "IN_PROGRESS").values(status="PENDING"))
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
    if style_id is None:
        row = StudioStyle(owner_id=owner_id, created_at=utcnow(), **values)
        session.add(row)
    else:
        row = session.get(StudioStyle, style_id)
        if row is None or row.owner_id != owner_id:
            return None
        for k, v in values.items():
            setattr(row, k, v)
    session.commit()
    return row


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
    if collection_id is None:
        row = StudioCollection(owner_id=owner_id, created_at=utcnow(), **values)
        session.add(row)
    else:
        row = get_collection(session, owner_id, collection_id)
        if row is None:
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
