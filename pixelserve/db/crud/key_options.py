"""A key's own settings per namespace (models.KeyOptions): read, and merge new values in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pixelserve.db.models import KeyOptions


def _row(session: Session, api_key_id: int | None, namespace: str) -> KeyOptions | None:
    key = KeyOptions.api_key_id.is_(None) if api_key_id is None else KeyOptions.api_key_id == api_key_id
    return session.scalar(select(KeyOptions).where(key, KeyOptions.namespace == namespace)
                          .order_by(KeyOptions.id).limit(1))


def get_options(session: Session, api_key_id: int | None, namespace: str) -> dict:
    row = _row(session, api_key_id, namespace)
    return dict(row.data) if row is not None else {}


def update_options(session: Session, api_key_id: int | None, namespace: str, values: dict) -> dict:
    """Merges ``values`` into the key's options (a None value removes that option); returns them all."""
    row = _row(session, api_key_id, namespace)
    merged = dict(row.data) if row is not None else {}
    merged.update(values)
    merged = {k: v for k, v in merged.items() if v is not None}
    if row is None:
        session.add(KeyOptions(api_key_id=api_key_id, namespace=namespace, data=merged))
    else:
        row.data = merged  # a new dict: the JSON column sees the change
    session.commit()
    return merged
