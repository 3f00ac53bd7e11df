"""API keys: created once (shown once), stored as a salted scrypt hash, compared in constant time.

A key is found by its non-secret prefix, then verified against the stored hash. Keys stored by
earlier versions as a plain SHA-256 are still accepted and re-hashed with scrypt on first use.
scrypt costs ~50 ms per check on purpose; ``service/auth.py`` remembers keys it has verified
(by a SHA-256 of the key, in memory only) so a busy client does not pay it on every request.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import ApiKey, utcnow

KEY_PREFIX = "ps_"


#: scrypt cost: 16 MiB and ~50 ms per check (hashlib's stdlib scrypt; OWASP's minimum is N=2^17
#: with r=8 for passwords; API keys are 256-bit random tokens, so a lighter cost suffices).
SCRYPT = dict(n=2**14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)


def hash_key(key: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


@functools.cache
def _dummy_hash() -> str:
    """A stored-hash stand-in for unknown prefixes (computed once, so checking it costs one scrypt)."""
    return hash_key("", b"\0" * 16)


def verify_key(key: str, stored: str) -> bool:
    """Constant-time check of ``key`` against a stored scrypt (or legacy SHA-256) hash."""
    if stored.startswith("scrypt$"):
        _, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(key.encode(), salt=bytes.fromhex(salt), **SCRYPT).hex()
        return hmac.compare_digest(candidate, digest)
    return hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), stored)


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


def find_key(session: Session, key: str) -> int | None:
    """The id of the stored key matching ``key`` (revoked or not), verifying the hash; else None."""
    if not key or len(key) > 256:
        return None
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == key[:10])).all()
    if not rows:
        verify_key(key, _dummy_hash())  # one scrypt, as a real check costs: no timing signal
        return None
    for row in rows:
        if verify_key(key, row.key_hash):
            if not row.key_hash.startswith("scrypt$"):  # a legacy SHA-256 row: upgrade it
                row.key_hash = hash_key(key)
                session.commit()
            return row.id
    return None


#: last_used_at is rewritten at most this often: a write on every request would serialize the
#: requests of all keys on the database's write lock for a field read to the minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def active_key(session: Session, key_id: int) -> KeyInfo | None:
    """The key's record when it is not revoked (its last use is recorded, to the minute)."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None and now.tzinfo is not None:
        last = last.replace(tzinfo=now.tzinfo)  # SQLite hands datetimes back naive
    if last is None or now - last >= LAST_USED_RESOLUTION or now < last:
        row.last_used_at = now
        session.commit()
    return _info(row)


def authenticate(session: Session, key: str) -> KeyInfo | None:
    """The active key matching ``key``, or None."""
    key_id = find_key(session, key)
    return None if key_id is None else active_key(session, key_id)
