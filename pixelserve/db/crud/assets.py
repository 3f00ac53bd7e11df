"""Asset library rows (db/models_assets.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelserve.db.models import utcnow
from pixelserve.db.models_assets import AssetRecord
from pixelserve.errors import Conflict


@dataclass(frozen=True)
class AssetFilter:
    scopes: tuple[str, ...]  # the scopes the caller may see (and asked for)
    name: str | None = None
    kinds: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0


def add(session: Session, row: AssetRecord) -> AssetRecord:
    now = utcnow()
    row.created_at = row.created_at or now
    row.updated_at = now
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"an asset named {row.name!r} already exists here", field="name") from None
    return row


def by_id(session: Session, asset_id: str) -> AssetRecord | None:
    return session.get(AssetRecord, asset_id)


def by_name(session: Session, scope: str, name: str) -> AssetRecord | None:
    return session.scalar(select(AssetRecord).where(AssetRecord.scope == scope, AssetRecord.name == name))


def in_scopes(session: Session, scopes: tuple[str, ...] | None) -> list[AssetRecord]:
    """The rows of ``scopes`` (None: of every scope), by scope and name."""
    query = select(AssetRecord).order_by(AssetRecord.scope, AssetRecord.name)
    if scopes is not None:
        query = query.where(AssetRecord.scope.in_(scopes))
    return list(session.scalars(query))


def listing(session: Session, f: AssetFilter) -> tuple[list[AssetRecord], int]:
    """One page of matching rows (newest first) and the number of all matching rows."""
    where = [AssetRecord.scope.in_(f.scopes)]
    if f.name is not None:
        where.append(AssetRecord.name == f.name)
    if f.kinds:
        where.append(AssetRecord.kind.in_(f.kinds))
    if f.families:
        where.append(AssetRecord.family.in_(f.families))
    if f.ids:
        where.append(AssetRecord.id.in_(f.ids))
    total = session.scalar(select(func.count()).select_from(AssetRecord).where(*where)) or 0
    rows = session.scalars(select(AssetRecord).where(*where)
                           .order_by(AssetRecord.created_at.desc(), AssetRecord.id).limit(f.limit).offset(f.offset))
    return list(rows), total


def update(session: Session, asset_id: str, **values) -> AssetRecord | None:
    row = session.get(AssetRecord, asset_id)
    if row is None:
        return None
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_at = utcnow()
    session.commit()
    return row


def remove(session: Session, asset_id: str) -> bool:
    done = session.execute(delete(AssetRecord).where(AssetRecord.id == asset_id))
    session.commit()
    return done.rowcount == 1
