"""What every OpenAI route shares: errors in OpenAI's shape and the Bearer API key.

``{"error": {"message", "type", "param", "code"}}``. Every validation failure is 400
``invalid_request_error`` naming the field in ``param`` (the SDK has no 422 handling for this
API); a feature this server lacks is a 400 too (the SDK would retry a 501 as a server error). The
SDK retries 408, 409, 429 and 5xx twice by default, so an answer a retry would only repeat carries
``x-should-retry: false``; one that may succeed later carries ``Retry-After`` instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.openai.protocol import ErrorBody
from pixelserve.dialects.openai.translate import ModerationBlocked
from pixelserve.errors import (BodyTooLarge, Forbidden, InvalidRequest, NotFound, NotSupported, PayloadTooLarge,
                               PixelserveError, QuotaExceeded, Unauthorized)
from pixelserve.http.deps import Auth
from pixelserve.http.route import DialectRoute
from pixelserve.service.auth import Caller

#: Domain error -> (HTTP status, OpenAI error type); the first match wins. Not listed: errors.STATUS's
#: status, as server_error (5xx) or invalid_request_error.
KINDS: list[tuple[type[PixelserveError], int, str]] = [
    (BodyTooLarge, 413, "invalid_request_error"),
    (PayloadTooLarge, 400, "invalid_request_error"),  # an input image over the limits
    (InvalidRequest, 400, "invalid_request_error"),
    (NotSupported, 400, "invalid_request_error"),
    (Unauthorized, 401, "authentication_error"),
    (Forbidden, 403, "permission_error"),
    (NotFound, 404, "not_found_error"),
    (QuotaExceeded, 429, "rate_limit_error"),
]


def error_code(exc: PixelserveError) -> str | None:
    if isinstance(exc, ModerationBlocked):
        return "moderation_blocked"
    if isinstance(exc, NotFound) and exc.field == "model":
        return "model_not_found"
    if isinstance(exc, Unauthorized):
        return "invalid_api_key"
    if isinstance(exc, NotSupported):
        return "unsupported_value"
    if isinstance(exc, QuotaExceeded):
        return "rate_limit_exceeded"
    return None


class OpenAIRoute(DialectRoute):
    error_model = ErrorBody

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        for exc_type, s, k in KINDS:
            if isinstance(exc, exc_type):
                status, kind = s, k
                break
        param = exc.field.split(".")[0] if exc.field else None
        body = {"error": {"message": str(exc), "type": kind, "param": param, "code": error_code(exc)}}
        headers = {}
        if exc.retry_after is None:  # nothing changes by retrying: the SDK must not send it again
            headers["x-should-retry"] = "false"
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body, status_code=status, headers=headers)


def openai_key(auth: Auth, authorization: Annotated[str | None, Header()] = None) -> Caller | None:
    """``Authorization: Bearer <key>`` (with auth off, any key: OpenAI clients always send one)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if auth.enabled and scheme.lower() != "bearer":
        raise Unauthorized("You didn't provide an API key: send 'Authorization: Bearer <key>'")
    return auth.check(token.strip())


Key = Annotated[Caller | None, Depends(openai_key)]
