"""Webhooks: the sending side. One asyncio task per API process (started and stopped with the app)
sends the outbox's due rows (``service/webhooks.py`` writes them), each attempt signed per Standard
Webhooks (the ``standardwebhooks`` package) with the key's secret:

    webhook-id: <the row's id, the same on every attempt>
    webhook-timestamp: <Unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>

A 2xx ends a delivery. Timeouts, connection errors, 5xx and 429 are retried with exponential
backoff and jitter (a ``Retry-After`` is waited out when it asks for longer) until 24 h after the
event; then it is ``failed``. Any other answer (a 4xx, or a 3xx: redirects are not followed) fails
it at once: the receiver refused that body and would refuse it again. Pending rows survive a
restart; the task takes them up at start. With several replicas each row's attempt is claimed
first (``db/crud/webhooks.claim``), so no two send it at once; delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from pixelserve.core.fetch import FetchPolicy, Unreachable, post
from pixelserve.db.crud import webhooks as crud
from pixelserve.db.models import utcnow
from pixelserve.errors import InvalidRequest
from pixelserve.service import webhooks

log = logging.getLogger(__name__)

# Read at each use (tests shorten them).
BACKOFF_FIRST_S = 5.0  # the wait after a first failed attempt; doubled after each
BACKOFF_MAX_S = 3600.0  # the longest wait between two attempts
POLL_S = 2.0  # how often the outbox is looked at when nothing wakes the sender (rows of other replicas)
BATCH = 32  # rows claimed per look
CONCURRENCY = 8  # attempts in flight at once
#: A claimed attempt is not taken by another replica for this long (the attempt's 10 s, and margin).
HOLD_S = 30.0
USER_AGENT = "pixelserve-webhooks"


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: exponential, with jitter so that a
    receiver coming back is not hit by every delivery at once."""
    base = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))
    return base / 2 + random.uniform(0, base / 2)


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` (seconds or an HTTP date) asks for; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def signed_headers(secret: str, delivery_id: str, payload: str, now: float | None = None) -> dict[str, str]:
    ts = int(now if now is not None else time.time())
    signature = Webhook(secret).sign(delivery_id, datetime.fromtimestamp(ts, timezone.utc), payload)
    return {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": delivery_id,
            "webhook-timestamp": str(ts), "webhook-signature": signature}


class WebhookSender:
    def __init__(self, sessions: sessionmaker[Session], secret: Callable[[int | None], str], policy: FetchPolicy,
                 on_outcome: Callable[[str], None] | None = None):
        """``secret(api_key_id)``: the ``whsec_`` secret a key's deliveries are signed with;
        ``on_outcome("delivered" | "retrying" | "failed")`` after each attempt (/metrics)."""
        self.sessions = sessions
        self.on_outcome = on_outcome
        self.secret = secret
        self.policy = policy
        self.outcomes: Counter[str] = Counter()  # delivered | retry | failed (for /metrics)
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    def wake(self) -> None:
        """Look at the outbox now (a job just ended); call on the event loop."""
        if self._wake is not None:
            self._wake.set()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Attempts still running after ``grace_s`` are left to finish on their threads; an unrecorded
        one is sent again once its claim lapses (at-least-once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace_s)
        self._wake = None

    # -- the loop --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        slots = asyncio.Semaphore(CONCURRENCY)
        while True:
            wait = POLL_S
            try:
                due = await asyncio.to_thread(self._db, crud.due, BATCH)
                for delivery_id in due:
                    await slots.acquire()
                    claimed = await asyncio.to_thread(self._db, crud.claim, delivery_id, HOLD_S)
                    if claimed is None:  # another replica took it
                        slots.release()
                        continue
                    task = asyncio.create_task(self._send(claimed, slots))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                if len(due) < BATCH:
                    soonest = await asyncio.to_thread(self._db, crud.next_due)
                    if soonest is not None:
                        wait = min(POLL_S, max(0.01, (soonest - utcnow()).total_seconds()))
                else:
                    wait = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is briefly away: look again later
                log.warning("webhook outbox: reading due deliveries failed", exc_info=True)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _send(self, claimed: crud.Delivery, slots: asyncio.Semaphore) -> None:
        try:
            outcome = await asyncio.to_thread(self.attempt, claimed)
            self.outcomes[outcome] += 1
            if self.on_outcome is not None:
                self.on_outcome("retrying" if outcome == "retry" else outcome)
            if outcome == "retry":
                self.wake()  # the loop sleeps until this row is due again (it was held while in flight)
        except Exception:
            log.exception("webhook %s: the attempt failed unexpectedly", claimed.id)
        finally:
            slots.release()

    # -- one attempt (on a worker thread) --------------------------------------------------------
    def attempt(self, claimed: crud.Delivery) -> str:
        """Sends a claimed delivery once and records the outcome: delivered | retry | failed."""
        headers = signed_headers(self.secret(claimed.api_key_id), claimed.id, claimed.payload)
        code, wait = None, None
        try:
            answer = post(claimed.url, claimed.payload.encode(), headers, policy=self.policy, field="webhook_url")
        except Unreachable as e:
            retryable, error = True, e.message
        except InvalidRequest as e:  # the target is refused now (its name resolves to a blocked address)
            retryable, error = False, e.message
        else:
            code = answer.status
            if 200 <= code < 300:
                self._db(crud.record, claimed, status="delivered", status_code=code, error=None)
                log.info("webhook %s delivered to %s (HTTP %d, attempt %d)", claimed.id, claimed.url, code,
                         claimed.attempts)
                return "delivered"
            retryable = code >= 500 or code == 429
            error = f"HTTP {code}"
            wait = retry_after(answer.headers.get("retry-after"), utcnow()) if retryable else None
        if retryable:
            delay = max(backoff(claimed.attempts), wait or 0.0)
            at = utcnow() + timedelta(seconds=delay)
            if at <= claimed.created_at + timedelta(seconds=webhooks.RETRY_WINDOW_S):
                self._db(crud.record, claimed, status="pending", status_code=code, error=error, next_attempt_at=at)
                log.info("webhook %s to %s: %s; attempt %d again in %.1f s", claimed.id, claimed.url, error,
                         claimed.attempts + 1, delay)
                return "retry"
            error += f" (retried for {webhooks.RETRY_WINDOW_S / 3600:g} h)"
        self._db(crud.record, claimed, status="failed", status_code=code, error=error)
        log.warning("webhook %s to %s failed after %d attempt(s): %s", claimed.id, claimed.url, claimed.attempts,
                    error)
        return "failed"

    def _db(self, fn, *args, **kwargs):
        with self.sessions() as session:
            return fn(session, *args, **kwargs)
