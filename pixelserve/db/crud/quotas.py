"""Per-key request quotas per minute, day and month, counted in the database (restart-safe).

Windows are calendar buckets in UTC (this minute, this day, this month), as a hosted API's
quota resets. A request is counted when it is accepted (after validation) and uncounted if its
job fails, so bad input and server-side failures never consume quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pixelserve.db.models import ApiKey, UsageEvent, utcnow

WINDOWS = ("minute", "day", "month")


@dataclass(frozen=True)
class QuotaLimits:
    """0 means unlimited."""

    per_minute: int = 0
    per_day: int = 0
    per_month: int = 0


def window_starts(now: datetime) -> dict[str, datetime]:
    return {
        "minute": now.replace(second=0, microsecond=0),
        "day": now.replace(hour=0, minute=0, second=0, microsecond=0),
        "month": now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    }


def seconds_until_next(window: str, now: datetime | None = None) -> int:
    """Seconds until the current ``window`` (minute, day, month) ends: a quota's Retry-After."""
    now = now or utcnow()
    start = window_starts(now)[window]
    if window == "minute":
        end = start + timedelta(minutes=1)
    elif window == "day":
        end = start + timedelta(days=1)
    else:
        end = (start + timedelta(days=32)).replace(day=1)
    return max(1, int((end - now).total_seconds() + 0.999))


def limits_for(session: Session, key_id: int, defaults: QuotaLimits) -> QuotaLimits:
    key = session.get(ApiKey, key_id)
    return QuotaLimits(
        per_minute=defaults.per_minute if key.quota_per_minute is None else key.quota_per_minute,
        per_day=defaults.per_day if key.quota_per_day is None else key.quota_per_day,
        per_month=defaults.per_month if key.quota_per_month is None else key.quota_per_month,
    )


def consume(session: Session, key_id: int, job_id: str, defaults: QuotaLimits, now: datetime | None = None) -> str | None:
    """Count one request; returns the exhausted window's name (nothing counted) or None (counted)."""
    now = now or utcnow()
    limits = limits_for(session, key_id, defaults)
    # Take the key row's write lock first (SQLite: BEGIN IMMEDIATE semantics through the UPDATE;
    # PostgreSQL: a row lock), so two concurrent requests cannot both pass the last free slot.
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    starts = window_starts(now)
    for window, limit in zip(WINDOWS, (limits.per_minute, limits.per_day, limits.per_month)):
        if limit <= 0:
            continue
        used = session.scalar(select(func.count()).select_from(UsageEvent).where(
            UsageEvent.api_key_id == key_id, UsageEvent.created_at >= starts[window]))
        if used >= limit:
            session.rollback()
            return window
    session.add(UsageEvent(api_key_id=key_id, job_id=job_id, created_at=now))
    session.commit()
    return None


def release(session: Session, job_id: str) -> None:
    """Uncount a request whose job failed or was cancelled."""
    session.execute(delete(UsageEvent).where(UsageEvent.job_id == job_id))
    session.commit()


def usage(session: Session, key_id: int, now: datetime | None = None) -> dict[str, int]:
    starts = window_starts(now or utcnow())
    return {w: session.scalar(select(func.count()).select_from(UsageEvent).where(
        UsageEvent.api_key_id == key_id, UsageEvent.created_at >= starts[w])) for w in WINDOWS}


def set_limits(session: Session, key_id: int, *, per_minute: int | None, per_day: int | None,
               per_month: int | None) -> bool:
    key = session.get(ApiKey, key_id)
    if key is None:
        return False
    key.quota_per_minute, key.quota_per_day, key.quota_per_month = per_minute, per_day, per_month
    session.commit()
    return True
