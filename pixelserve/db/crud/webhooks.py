"""The webhook outbox (``webhook_deliveries``) and the keys' webhook settings.

A row is written with the job's final state (in the same transaction) and sent by whichever API
replica claims it first: claiming moves ``next_attempt_at`` past the attempt's own timeout in one
conditional UPDATE, so two replicas never send the same attempt at once, and an attempt whose
replica died is taken up again once that time has passed (at-least-once).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import ApiKey, WebhookDelivery, utcnow

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def aware(t: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive (they were written in UTC)."""
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    api_key_id: int | None
    url: str
    event_type: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _view(r: WebhookDelivery) -> Delivery:
    return Delivery(r.id, r.job_id, r.api_key_id, r.url, r.event_type, r.payload, r.status, r.attempts,
                    aware(r.next_attempt_at), r.last_status_code, r.last_error, aware(r.created_at),
                    aware(r.delivered_at))


# -- keys ----------------------------------------------------------------------------------------
def key_webhook(session: Session, key_id: int) -> tuple[str | None, str | None] | None:
    """(default URL, secret) of a key; None when there is no such key."""
    row = session.get(ApiKey, key_id)
    return None if row is None else (row.webhook_url, row.webhook_secret)


def set_key_url(session: Session, key_id: int, url: str | None) -> bool:
    done = session.execute(update(ApiKey).where(ApiKey.id == key_id).values(webhook_url=url)).rowcount == 1
    session.commit()
    return done


def key_secret(session: Session, key_id: int, *, rotate: bool = False) -> str | None:
    """The key's signing secret, made on first need (or replaced: ``rotate``); None: no such key.
    Two replicas making one at once: the conditional UPDATE lets one win and both read it."""
    stmt = update(ApiKey).where(ApiKey.id == key_id).values(webhook_secret=new_secret())
    if not rotate:
        stmt = stmt.where(ApiKey.webhook_secret.is_(None))
    session.execute(stmt)
    session.commit()
    return session.scalar(select(ApiKey.webhook_secret).where(ApiKey.id == key_id))


# -- the outbox ----------------------------------------------------------------------------------
def add(session: Session, delivery_id: str, *, job_id: str, api_key_id: int | None, url: str, event_type: str,
        payload: str) -> None:
    """Part of the caller's transaction (not committed here)."""
    now = utcnow()
    session.add(WebhookDelivery(id=delivery_id, job_id=job_id, api_key_id=api_key_id, url=url,
                                event_type=event_type, payload=payload, status="pending", attempts=0,
                                next_attempt_at=now, created_at=now))


def due(session: Session, limit: int) -> list[str]:
    """Ids of pending rows whose next attempt is due, oldest first."""
    return list(session.scalars(select(WebhookDelivery.id)
                                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow())
                                .order_by(WebhookDelivery.next_attempt_at).limit(limit)))


def next_due(session: Session) -> datetime | None:
    """When the earliest pending row is due."""
    return aware(session.scalar(select(WebhookDelivery.next_attempt_at).where(WebhookDelivery.status == "pending")
                                .order_by(WebhookDelivery.next_attempt_at).limit(1)))


def claim(session: Session, delivery_id: str, hold_s: float) -> Delivery | None:
    """Takes a due row for one attempt (counted now, so an attempt cut short by a crash counts); it is
    not due again for ``hold_s``. None: not due, or another replica took it first."""
    now = utcnow()
    taken = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
               WebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=now + timedelta(seconds=hold_s), attempts=WebhookDelivery.attempts + 1)
    ).rowcount == 1
    session.commit()
    return _view(session.get(WebhookDelivery, delivery_id)) if taken else None


def record(session: Session, claimed: Delivery, *, status: str, status_code: int | None, error: str | None,
           next_attempt_at: datetime | None = None) -> bool:
    """The attempt's outcome, written only while the row is still this attempt's (a claim that lapsed
    and was taken again elsewhere is not overwritten)."""
    values: dict = dict(status=status, last_status_code=status_code, last_error=error)
    if status == "delivered":
        values["delivered_at"] = utcnow()
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    done = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id, WebhookDelivery.status == "pending",
               WebhookDelivery.attempts == claimed.attempts)
        .values(**values)
    ).rowcount == 1
    session.commit()
    return done


def listing(session: Session, *, status: str | None = None, limit: int = 50) -> list[Delivery]:
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return [_view(r) for r in session.scalars(stmt)]


def get(session: Session, delivery_id: str) -> Delivery | None:
    row = session.get(WebhookDelivery, delivery_id)
    return None if row is None else _view(row)


def retry(session: Session, delivery_id: str) -> bool:
    """Due again now, whatever its state (a manual retry of a failed or delivered one)."""
    done = session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                           .values(status="pending", next_attempt_at=utcnow(), delivered_at=None)).rowcount == 1
    session.commit()
    return done
