"""API keys: created once (shown once), stored as an HMAC-SHA256 under a server secret.

A key is ``ps_`` + 43 random base64url characters (256 bits): a token, not a password, so a keyed
hash is enough at rest and costs microseconds. Its first 10 characters are the public prefix,
stored in an indexed column since the first schema: a key is found by its prefix, then its HMAC is
compared in constant time. A key that is malformed or whose prefix is unknown is refused without
hashing anything.

Rows written by earlier versions hold a salted scrypt hash (or, older still, a plain SHA-256); they
are checked that way and re-hashed as HMAC on their first successful use, so no key stops working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import ApiKey, utcnow

KEY_PREFIX = "ps_"
#: Characters of a key stored in clear (``KEY_PREFIX`` and 7 random ones): the lookup part.
PREFIX_LEN = 10
#: Every key ever issued: ``ps_`` + secrets.token_urlsafe(32).
KEY_FORMAT = re.compile(r"ps_[A-Za-z0-9_-]{43}")
HMAC_TAG = "hmac$"

#: Legacy scrypt cost (rows written before HMAC); only checked, never written any more.
SCRYPT = dict(n=2**14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)


def well_formed(key: str) -> bool:
    return KEY_FORMAT.fullmatch(key) is not None


def hash_key(key: str, secret: bytes) -> str:
    return HMAC_TAG + hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def verify_key(key: str, stored: str, secret: bytes) -> bool:
    """Constant-time check of ``key`` against a stored HMAC (or legacy scrypt / SHA-256) hash."""
    if stored.startswith(HMAC_TAG):
        return hmac.compare_digest(hash_key(key, secret), stored)
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


def create_key(session: Session, name: str, secret: bytes) -> tuple[KeyInfo, str]:
    """Returns the record and the plain key (the only time it exists in plain text).

    ``secret``: the server's key-hashing secret (``Settings.api_key_hmac_secret()``)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:PREFIX_LEN], key_hash=hash_key(key, secret))
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


def find_key(session: Session, key: str, secret: bytes, *, slow: bool = True) -> int | None:
    """The id of the stored key matching ``key`` (revoked or not); else None.

    Malformed keys and unknown prefixes cost one indexed lookup at most, no hash. A legacy row that
    matches is re-hashed as HMAC; ``slow=False`` passes over legacy scrypt rows (~50 ms each)."""
    if not well_formed(key):
        return None
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == key[:PREFIX_LEN])).all()
    for row in rows:
        if not slow and row.key_hash.startswith("scrypt$"):
            continue
        if verify_key(key, row.key_hash, secret):
            if not row.key_hash.startswith(HMAC_TAG):  # scrypt or SHA-256 from an earlier version
                row.key_hash = hash_key(key, secret)
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


def authenticate(session: Session, key: str, secret: bytes) -> KeyInfo | None:
    """The active key matching ``key``, or None."""
    key_id = find_key(session, key, secret)
    return None if key_id is None else active_key(session, key_id)
