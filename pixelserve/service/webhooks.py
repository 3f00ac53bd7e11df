"""Webhooks: the outbox side. A job's end is written as a delivery in the same transaction as the
job's final state, so a job recorded as ended always has its webhook on the way (and a crash before
the commit leaves neither); ``service/webhook_sender.py`` sends it.

Where it goes: the job's own URL (``X-Webhook-URL`` or a dialect's ``webhook_url`` body field),
else its key's default (``pixelserve keys webhook ID URL``); no URL, no delivery. The URL is checked
at admission under the same address rule the sender applies (``core/fetch.py``), so a refused
target is a 4xx before anything is written.

The body, exactly as signed and sent, is kept on the row: every attempt carries the same body and
the same ``webhook-id``. Its image URLs are signed for the whole retry window (plus the usual URL
lifetime), so a late delivery still points at images that open.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any, Callable

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core.fetch import FetchPolicy, check_url
from pixelserve.db.crud import jobs as jobs_crud
from pixelserve.db.crud import webhooks as crud
from pixelserve.errors import InvalidRequest
from pixelserve.service.events import JobEvent
from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner
from pixelserve.storage.urls import download_url

log = logging.getLogger(__name__)

#: Automatic retries stop this long after the event (then the delivery is ``failed``).
RETRY_WINDOW_S = 24 * 3600.0
MAX_URL_LENGTH = 2048
#: The final event -> the webhook's ``type`` and the job's ``status``.
EVENT_TYPES = {"finished": ("job.finished", "succeeded"), "failed": ("job.failed", "failed"),
               "cancelled": ("job.cancelled", "cancelled")}


def target_policy(allow_private: bool) -> FetchPolicy:
    """How webhook targets are reached: 10 s for the whole attempt, at most 64 KiB of an answer read,
    and (``PIXELSERVE_WEBHOOK_ALLOW_PRIVATE``) whether private addresses may be."""
    return FetchPolicy(max_bytes=64 * 1024, timeout_s=10.0, max_redirects=0, allow_private=allow_private)


def check_target(url: str, policy: FetchPolicy, field: str = "X-Webhook-URL") -> None:
    """InvalidRequest naming ``field`` unless ``url`` is an http(s) URL with a host whose address the
    sender may reach. Resolves the name: call off the event loop."""
    location = "header" if field.lower().startswith("x-") else "body"
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"must be at most {MAX_URL_LENGTH} characters", field=field, location=location)
    try:
        check_url(url, policy=policy, field=field)
    except InvalidRequest as e:
        raise InvalidRequest(e.message, field=field, location=location) from None


class Outbox:
    """``Pipeline.outbox``: checks a job's webhook URL at admission; writes its delivery at its end.

    ``base_url()``: the absolute root of the image URLs in payloads (``PIXELSERVE_PUBLIC_BASE_URL``,
    else the URL ``pixelserve serve`` listens on); None: root-relative ``/v1/images/...`` URLs.
    ``keyless_secret()``: the secret of jobs without a key (auth disabled)."""

    def __init__(self, sessions: sessionmaker[Session], store: ImageStore, signer: UrlSigner, *,
                 allow_private: bool, base_url: Callable[[], str | None], keyless_secret: Callable[[], str]):
        self.sessions = sessions
        self.store = store
        self.signer = signer
        self.policy = target_policy(allow_private)
        self.base_url = base_url
        self.keyless_secret = keyless_secret

    # -- admission -------------------------------------------------------------------------------
    def check_url(self, url: str, field: str = "X-Webhook-URL") -> None:
        check_target(url, self.policy, field)

    # -- the job's end (inside the pipeline's record transaction) --------------------------------
    def write(self, session: Session, job_id: str, event: str, **data: Any) -> None:
        """Adds the delivery of ``event`` (finished | failed | cancelled) for the job, uncommitted: the
        caller's commit writes it with the job's final state. A job already ended, or with no URL,
        gets none. Never raises: a webhook must not fail a job's record."""
        try:
            row = jobs_crud.get_job(session, job_id)
            if row is None or row.status in jobs_crud.FINAL:
                return
            url = row.webhook_url
            if url is None and row.api_key_id is not None:
                url = (crud.key_webhook(session, row.api_key_id) or (None, None))[0]
            if not url:
                return
            event_type, status = EVENT_TYPES[event]
            images = [{"url": self.image_url(im["key"]), "seed": im["seed"]} for im in data.get("images", ())]
            payload = {"type": event_type, "job_id": row.client_id or row.id, "status": status,
                       "dialect": row.dialect, "model": row.model, "images": images,
                       "error": data.get("error"), "timings": data.get("timings_ms")}
            crud.add(session, "msg_" + secrets.token_urlsafe(18), job_id=job_id, api_key_id=row.api_key_id,
                     url=url, event_type=event_type, payload=json.dumps(payload, separators=(",", ":")))
        except Exception:
            log.exception("job %s: its webhook could not be written", job_id)

    def image_url(self, storage_key: str) -> str:
        ttl = int(RETRY_WINDOW_S) + self.signer.ttl
        return download_url(self.store, self.signer, self.base_url() or "", storage_key, ttl=ttl)

    # -- secrets ---------------------------------------------------------------------------------
    def secret(self, key_id: int | None, *, rotate: bool = False) -> str:
        """The ``whsec_`` secret a key's deliveries are signed with (made on first need)."""
        if key_id is None:
            return self.keyless_secret()
        with self.sessions() as session:
            found = crud.key_secret(session, key_id, rotate=rotate)
        if found is None:
            raise InvalidRequest(f"no API key {key_id}")
        return found

    def default_url(self, key_id: int) -> str | None:
        with self.sessions() as session:
            return (crud.key_webhook(session, key_id) or (None, None))[0]

    def set_default_url(self, key_id: int, url: str | None) -> bool:
        """Checks ``url`` (as at admission) and makes it the key's default; None clears it. False: no key."""
        if url is not None:
            self.check_url(url, field="url")
        with self.sessions() as session:
            return crud.set_key_url(session, key_id, url)


def wake_on_final(wake: Callable[[], None]) -> Callable[[JobEvent], None]:
    """The bus subscriber: a job's end wakes the sender at once (its delivery is committed by then)."""

    def on_event(event: JobEvent) -> None:
        if event.type in EVENT_TYPES:
            wake()

    return on_event
