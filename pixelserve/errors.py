"""Domain exceptions and the one table that maps them to HTTP statuses.

Raise these anywhere; each dialect renders them in its vendor's error body (see
``dialects/<vendor>/router.py``). A 500 is a bug: bad input never produces one.
"""

from __future__ import annotations


class PixelserveError(Exception):
    """Base of every error pixelserve raises on purpose."""

    #: Seconds after which a retry may succeed (sent as ``Retry-After``); None: not a retryable error.
    retry_after: int | None = None

    def __init__(self, message: str, *, field: str | None = None, retry_after: int | None = None,
                 location: str = "body"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.location = location  # where ``field`` was sent: body | header | path | query
        if retry_after is not None:
            self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidRequest(PixelserveError):
    """The request is malformed or a field is out of range."""


class InvalidHeader(InvalidRequest):
    """A request header is missing or malformed (content type, for example)."""


class UnsupportedMediaType(InvalidHeader):
    """The body's Content-Type is not one the endpoint reads (JSON endpoints take application/json)."""


class Unauthorized(PixelserveError):
    """Missing or wrong credentials."""


class Forbidden(PixelserveError):
    """Valid credentials, but not allowed (revoked key, expired signed URL)."""


class NotFound(PixelserveError):
    """The addressed object does not exist (or is not the caller's)."""


class Conflict(PixelserveError):
    """The request collides with another one in flight (an Idempotency-Key still running)."""

    retry_after = 1


class RequestTimeout(PixelserveError):
    """The request's body did not arrive within the body-read deadline (a slow or stalled client)."""


class NotSupported(PixelserveError):
    """A feature of the wire format this server does not implement (yet)."""


class PayloadTooLarge(PixelserveError):
    """Body or image over the configured size limits."""


class BodyTooLarge(PayloadTooLarge):
    """The HTTP request body is over ``max_body_bytes`` (refused before it is read in full)."""


class PaymentRequired(PixelserveError):
    """Not enough credits for the request (Studio); nothing was generated or charged."""

    def __init__(self, message: str, *, field: str | None = None, detail: dict | None = None):
        super().__init__(message, field=field)
        self.detail = detail or {}  # e.g. the caller's balances, for the vendor's error body


class QuotaExceeded(PixelserveError):
    """A rate limit or quota was hit."""


class AuthThrottled(QuotaExceeded):
    """Too many failed authentications from this address or for this key prefix (service/auth_limits.py)."""

    retry_after = 60


class Overloaded(PixelserveError):
    """The queue is full; retry later."""

    retry_after = 1


class NotReady(PixelserveError):
    """Models are still loading."""

    retry_after = 5


class Unavailable(PixelserveError):
    """A part the server leans on is not answering (the image store, the database); nothing was
    charged or half-written, and the server recovers by itself when it comes back."""

    retry_after = 5


class StorageUnavailable(Unavailable):
    """The image store refused a write (disk full, read-only, the S3 server away)."""


class DatabaseUnavailable(Unavailable):
    """The database refused a connection or a write (server down, file read-only or full)."""


class DeadlineExceeded(Overloaded):
    """The job did not finish within the per-request deadline; it was stopped, not left running."""

    retry_after = 5


class Cancelled(PixelserveError):
    """The job was cancelled (client went away, or an explicit cancel)."""


class EngineFailure(PixelserveError):
    """The engine failed on a valid request (a crashed worker, a pipeline error)."""


class OutOfMemory(EngineFailure):
    """The device ran out of memory on this request, alone (a batch is first retried one job at a
    time). Other jobs may be holding memory, so a retry (or a smaller size) may succeed."""

    retry_after = 5


STATUS: dict[type[PixelserveError], int] = {
    InvalidRequest: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RequestTimeout: 408,
    PaymentRequired: 402,
    PayloadTooLarge: 413,
    QuotaExceeded: 429,
    AuthThrottled: 429,  # listed so each dialect documents how it renders it
    Cancelled: 499,
    EngineFailure: 500,
    NotSupported: 501,
    UnsupportedMediaType: 415,
    OutOfMemory: 503,
    Overloaded: 503,
    NotReady: 503,
    Unavailable: 503,
}


def status_of(exc: PixelserveError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500
