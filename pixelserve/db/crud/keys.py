"""API keys: created once (shown once), stored as a SHA-256 hash, checked in constant time."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import ApiKey, utcnow

KEY_PREFIX = "ps_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _info(k: ApiKey) -> KeyInfo:
    return KeyInfo(k.id, k.name, k.prefix, k.created_at, k.revoked_at, k.last_used_at)


def create_key(session: Session, name: str) -> tuple[KeyInfo, str]:
    """Returns the record and the plain key (the only time it exists in plain text)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:10], key_hash=hash_key(key))
    session.add(row)
    session.commit()
    return _info(row), key


def list_keys(session: Session) -> list[KeyInfo]:
    return [_info(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_key(session: Session, key_id: int) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    session.commit()
    return result.rowcount == 1


def authenticate(session: Session, key: str) -> KeyInfo | None:
    """The active key matching ``key``, or None. Lookup is by hash, so timing reveals nothing."""
    if not key:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = utcnow()
    session.commit()
    return _info(row)
