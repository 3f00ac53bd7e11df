"""``Idempotency-Key`` on POSTs: a retried request gets the first answer instead of a second job.

The first request with a key claims it (a unique row per caller and key), runs, and stores its
answer; a retry with the same key and the same body gets that answer back (marked with
``Idempotent-Replayed: true``); the same key with another body is refused; a retry while the first
is still running is told to wait (409). Only successful (2xx) answers are kept: a refused request
(bad input, no credits, busy, a server error) releases the key, writes nothing, and its retry really
runs again. Answers are kept for ``TTL``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.models import IdempotentRequest, utcnow
from pixelserve.errors import Conflict, InvalidRequest

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    content_type: str | None
    body: bytes


def scope_of(*credentials: str | None) -> str:
    """Keys are per caller: a hash of whatever credential headers the request carried."""
    return hashlib.sha256("\n".join(c or "" for c in credentials).encode()).hexdigest()


def fingerprint_of(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def claim(sessions: sessionmaker[Session], scope: str, key: str, fingerprint: str) -> StoredAnswer | None:
    """None: this request owns the key now and must ``finish`` or ``release`` it.

    A StoredAnswer: replay it. Raises InvalidRequest (key reused for another body, bad key) or
    Conflict (the first request with this key is still running).
    """
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"must be 1 to {MAX_KEY_LENGTH} printable characters", field="Idempotency-Key", location="header")
    with sessions() as s:
        s.execute(delete(IdempotentRequest).where(IdempotentRequest.created_at < utcnow() - TTL))
        s.add(IdempotentRequest(scope=scope, key=key, fingerprint=fingerprint))
        try:
            s.commit()
            return None
        except IntegrityError:
            s.rollback()
        row = s.scalar(select(IdempotentRequest).where(IdempotentRequest.scope == scope,
                                                       IdempotentRequest.key == key))
    if row is None:  # released between our insert and read: let the client retry
        raise Conflict("a request with this Idempotency-Key just finished; retry", field="Idempotency-Key", location="header")
    if row.fingerprint != fingerprint:
        raise InvalidRequest("was already used for a different request", field="Idempotency-Key", location="header")
    if row.status_code is None:
        raise Conflict("a request with this Idempotency-Key is still running", field="Idempotency-Key", location="header")
    return StoredAnswer(row.status_code, row.content_type, row.body or b"")


def finish(sessions: sessionmaker[Session], scope: str, key: str, answer: StoredAnswer) -> None:
    with sessions() as s:
        row = s.scalar(select(IdempotentRequest).where(IdempotentRequest.scope == scope,
                                                       IdempotentRequest.key == key))
        if row is not None:
            row.status_code, row.content_type, row.body = answer.status_code, answer.content_type, answer.body
            s.commit()


def release(sessions: sessionmaker[Session], scope: str, key: str) -> None:
    with sessions() as s:
        s.execute(delete(IdempotentRequest).where(IdempotentRequest.scope == scope, IdempotentRequest.key == key))
        s.commit()
