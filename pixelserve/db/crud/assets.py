"""Asset library rows (db/models_assets.py)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelserve.db.models import utcnow
from pixelserve.db.models_assets import AssetRecord
from pixelserve.errors import Conflict


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


def listing(session: Session, *, scopes: tuple[str, ...], name: str | None = None, kinds: tuple[str, ...] = (),
            families: tuple[str, ...] = (), ids: tuple[str, ...] = (), limit: int = 20,
            offset: int = 0) -> tuple[list[AssetRecord], int]:
    """One page of matching rows (newest first) and the number of all matching rows; an empty
    ``kinds``, ``families`` or ``ids`` does not filter, an empty ``scopes`` matches nothing."""
    where = [AssetRecord.scope.in_(scopes)]
    if name is not None:
        where.append(AssetRecord.name == name)
    if kinds:
        where.append(AssetRecord.kind.in_(kinds))
    if families:
        where.append(AssetRecord.family.in_(families))
    if ids:
        where.append(AssetRecord.id.in_(ids))
    total = session.scalar(select(func.count()).select_from(AssetRecord).where(*where)) or 0
    rows = session.scalars(select(AssetRecord).where(*where)
                           .order_by(AssetRecord.created_at.desc(), AssetRecord.id).limit(limit).offset(offset))
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
