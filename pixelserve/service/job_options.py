"""What a request says about its job besides the generation itself, in every dialect alike.

``X-Job-Id`` (the caller's own id for the job, so it can watch a synchronous request while it
runs) and ``X-Webhook-URL`` are headers every dialect takes; ``DialectRoute`` reads them into a
``JobOptions`` held in a context variable for the request, the pipeline's ``admit`` stage writes
them on the job, and the route answers ``X-Job-Id`` with the id of the job the request created.
A dialect with room in its body for one of them sets it on the same object.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field

from pixelserve.errors import InvalidHeader

#: 1-64 characters, letters, digits, ``_`` and ``-``.
CLIENT_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class JobOptions:
    client_id: str | None = None  # X-Job-Id as sent
    webhook_url: str | None = None  # X-Webhook-URL, or the dialect's body field
    webhook_field: str = "X-Webhook-URL"  # where webhook_url came from, for the error naming it
    #: Ids the request's jobs answer to (filled by admit), for the X-Job-Id answer header.
    job_ids: list[str] = field(default_factory=list)


_current: ContextVar[JobOptions | None] = ContextVar("pixelserve_job_options", default=None)


def from_headers(headers) -> JobOptions:
    """Raises ``InvalidHeader`` (the dialect's 4xx, naming the header) on a malformed id."""
    client_id = headers.get("x-job-id")
    if client_id is not None and not CLIENT_JOB_ID.fullmatch(client_id):
        raise InvalidHeader("X-Job-Id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
                            field="X-Job-Id", location="header")
    webhook_url = headers.get("x-webhook-url") or None
    return JobOptions(client_id=client_id, webhook_url=webhook_url)


def set_webhook_from_body(url: str | None, field: str = "webhook_url") -> None:
    """A dialect's body field naming the webhook target (it wins over the header)."""
    options = _current.get()
    if url is not None and options is not None:
        options.webhook_url, options.webhook_field = url, field


def set_current(options: JobOptions | None):
    """Returns the token ``reset`` takes."""
    return _current.set(options)


def reset(token) -> None:
    _current.reset(token)


def current() -> JobOptions | None:
    """The options of the request being served; None outside a dialect route (CLI, resumed jobs)."""
    return _current.get()
