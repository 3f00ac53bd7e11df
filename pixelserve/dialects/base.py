"""What every dialect's routes share: body limits, and errors rendered in the vendor's shape.

Not a dialect itself: each dialect subclasses ``DialectRoute`` and says how its vendor writes
an error body. Validation errors become ``InvalidRequest`` naming the field; a domain error keeps
its status from ``errors.STATUS`` unless the vendor documents another; anything unexpected is
logged and rendered as the vendor's internal error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from pixelserve.errors import (Forbidden, InvalidRequest, NotFound, PayloadTooLarge, PixelserveError, Unauthorized,
                               status_of)
from pixelserve.service import idempotency

log = logging.getLogger(__name__)

#: HTTP errors FastAPI raises itself, as the domain errors a dialect renders.
FRAMEWORK_ERRORS: dict[int, type[PixelserveError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 413: PayloadTooLarge,
}


def validation_message(exc: RequestValidationError) -> InvalidRequest:
    """The first validation error as one readable message naming the field."""
    errors = exc.errors()
    if not errors:
        return InvalidRequest("invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    field = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return InvalidRequest("body is not valid JSON")
    if not field and first.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return InvalidRequest("body must be a JSON object")
    if first.get("type") == "missing":
        msg = "is required"
    return InvalidRequest(msg.removeprefix("Value error, "), field=field)


class DialectRoute(APIRoute):
    """Subclass per dialect and implement ``render``."""

    max_body_bytes: int = 16 * 1024 * 1024

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        vendor_render = self.render

        def render(exc: PixelserveError, status: int) -> Response:
            response = vendor_render(exc, status)
            if exc.retry_after is not None:  # 429 / 503: when a retry may succeed, in every dialect
                response.headers["Retry-After"] = str(max(1, int(exc.retry_after)))
            return response

        async def route(request: Request) -> Response:
            try:
                limit = getattr(request.app.state, "max_body_bytes", self.max_body_bytes)
                declared = request.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes")
                if request.method in ("POST", "PUT", "PATCH"):
                    body = b""
                    async for chunk in request.stream():
                        body += chunk
                        if len(body) > limit:
                            raise PayloadTooLarge(f"request body over {limit} bytes")
                    request._body = body  # FastAPI reads the body from here
                    key = request.headers.get("idempotency-key")
                    if key is not None and hasattr(request.app.state, "sessions"):
                        return await idempotent(request, key, body, handler, render)
                return await handler(request)
            except RequestValidationError as exc:
                err = validation_message(exc)
                err.validation_errors = exc.errors()  # for dialects that answer every error (OctoAI)
                return render(err, status_of(err))
            except PixelserveError as exc:
                return render(exc, status_of(exc))
            except HTTPException as exc:
                # FastAPI's own refusals inside a dialect route (a body its JSON parser gives up on,
                # such as JSON nested past the recursion limit) still answer in the vendor's shape.
                err = FRAMEWORK_ERRORS.get(exc.status_code)
                if err is None:
                    raise
                err = err(str(exc.detail) if exc.status_code != 400 else "body is not valid JSON")
                return render(err, status_of(err))
            except json.JSONDecodeError:
                err = InvalidRequest("body is not valid JSON")
                return render(err, status_of(err))
            except Exception as exc:  # a bug; the client still gets the vendor's error shape
                log.exception("unhandled error on %s", request.url.path)
                return render(PixelserveError(f"internal error ({type(exc).__name__})"), 500)

        return route


#: Answers not kept for an Idempotency-Key: a retry of these must really run again.
NOT_REPLAYED = {409, 429}


async def idempotent(request: Request, key: str, body: bytes, handler: Callable, render: Callable) -> Response:
    """Run ``handler`` once per (caller, Idempotency-Key); replay its answer to retries."""
    sessions = request.app.state.sessions
    scope = idempotency.scope_of(request.headers.get("authorization"), request.headers.get("x-api-key"))
    fingerprint = idempotency.fingerprint_of(request.method, request.url.path, body)
    stored = await asyncio.to_thread(idempotency.claim, sessions, scope, key, fingerprint)
    if stored is not None:
        return Response(stored.body, status_code=stored.status_code, media_type=stored.content_type,
                        headers={"Idempotent-Replayed": "true"})
    response = None
    try:
        try:
            response = await handler(request)
        except PixelserveError as exc:
            response = render(exc, status_of(exc))
        return response
    finally:
        body_bytes = getattr(response, "body", None)
        if response is not None and response.status_code < 500 and response.status_code not in NOT_REPLAYED \
                and isinstance(body_bytes, bytes):
            answer = idempotency.StoredAnswer(response.status_code, response.headers.get("content-type"), body_bytes)
            await asyncio.shield(asyncio.to_thread(idempotency.finish, sessions, scope, key, answer))
        else:
            await asyncio.shield(asyncio.to_thread(idempotency.release, sessions, scope, key))
