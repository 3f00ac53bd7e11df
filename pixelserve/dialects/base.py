"""What every dialect's routes share: body limits, strict JSON, errors rendered in the vendor's
shape (and documented in the OpenAPI schema), and ``Idempotency-Key``.

Not a dialect itself: each dialect subclasses ``DialectRoute``, says how its vendor writes an error
body (``render``) and gives the pydantic model of that body (``error_model``). Validation errors
become ``InvalidRequest`` naming the field; a domain error keeps its status from ``errors.STATUS``
unless the vendor documents another; anything unexpected is logged and rendered as the vendor's
internal error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from http import HTTPStatus
from typing import Any, Callable

from fastapi import Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from pixelserve import errors
from pixelserve.errors import (BodyTooLarge, Cancelled, Forbidden, InvalidRequest, NotFound, PayloadTooLarge,
                               PixelserveError, RequestTimeout, Unauthorized, UnsupportedMediaType, status_of)
from pixelserve.service import idempotency

log = logging.getLogger(__name__)


async def client_gone(request: Request) -> None:
    """Returns once the client has closed the connection (for service.generation.cancel_on_disconnect).

    After the body has been read, the server's next ASGI message for this request is
    ``http.disconnect``: it arrives when the connection drops (or the answer has gone out), so one
    waiting ``receive()`` replaces polling ``request.is_disconnected()``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass

#: HTTP errors FastAPI raises itself, as the domain errors a dialect renders.
FRAMEWORK_ERRORS: dict[int, type[PixelserveError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 413: PayloadTooLarge,
}
#: Deeper JSON than this is refused: no wire format here nests more than a few levels.
MAX_JSON_DEPTH = 32
#: Stands in for a JSON body that could not be read, so FastAPI's validation fails after the
#: route's dependencies (authentication) ran, and the reason is reported then.
_UNREADABLE = object()


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


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"{name} is not a JSON number (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity
        raise InvalidRequest(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no integers past Python's digit limit, at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(body, parse_constant=_no_constants, parse_float=_finite)
    except InvalidRequest:
        raise
    except RecursionError:
        raise InvalidRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError, an integer over 4300 digits, bad UTF-8
        raise InvalidRequest("body is not valid JSON") from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return value


def phrase(status: int) -> str:
    """The reason phrase of an HTTP status (499, nginx's "client closed request", included)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def not_blank(value: str) -> str:
    """For ``AfterValidator``: a text field must hold more than white space."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes (the rest never read) or past the app's
    body-read deadline (a stalled client does not hold a request open)."""
    seconds = getattr(request.app.state, "body_read_timeout", None)
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {seconds:g} s") from None
    return bytes(body)


class DialectRoute(APIRoute):
    """Subclass per dialect: implement ``render`` and set ``error_model``."""

    max_body_bytes: int = 16 * 1024 * 1024
    #: The pydantic model of the vendor's error body; documented for every error status it renders.
    error_model: type[BaseModel] | None = None

    def __init__(self, path: str, endpoint: Callable, *, responses: dict | None = None, **kwargs: Any):
        super().__init__(path, endpoint, responses={**self.error_responses(), **(responses or {})}, **kwargs)

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> Response:
        raise NotImplementedError

    @classmethod
    def error_responses(cls) -> dict[int, dict]:
        """OpenAPI responses: each status this dialect renders a domain error with, and its body."""
        if cls.error_model is None:
            return {}
        statuses = {500}
        for exc_type in {errors.PixelserveError, *errors.STATUS, BodyTooLarge}:
            exc = exc_type("example")
            statuses.add(cls.render(exc, status_of(exc)).status_code)
        return {s: {"model": cls.error_model, "description": phrase(s)} for s in sorted(statuses)}

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        vendor_render = self.render
        json_body = self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)

        def render(exc: PixelserveError, status: int) -> Response:
            response = vendor_render(exc, status)
            if exc.retry_after is not None:  # 429 / 503: when a retry may succeed, in every dialect
                response.headers["Retry-After"] = str(max(1, int(exc.retry_after)))
            if isinstance(exc, RequestTimeout):  # the unread rest of the body must not pass for a next request
                response.headers["Connection"] = "close"
            return response

        async def route(request: Request) -> Response:
            unreadable: InvalidRequest | None = None  # reported after authentication, when validation fails
            try:
                limit = getattr(request.app.state, "max_body_bytes", self.max_body_bytes)
                declared = request.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
                if request.method in ("POST", "PUT", "PATCH"):
                    body = await read_body(request, limit)
                    request._body = body  # FastAPI reads the body from here
                    if json_body:
                        content_type = request.headers.get("content-type")
                        if not is_json(content_type):
                            unreadable = UnsupportedMediaType(
                                f"Content-Type must be application/json, got {content_type or 'none'}")
                        elif body:
                            try:
                                request._json = parse_json(body)  # FastAPI's request.json() returns this
                            except InvalidRequest as e:
                                unreadable, request._json = e, _UNREADABLE
                    key = request.headers.get("idempotency-key")
                    if key is not None and hasattr(request.app.state, "sessions"):
                        return await idempotent(request, key, body, handler, render)
                return await handler(request)
            except RequestValidationError as exc:
                err = unreadable
                if err is None:
                    err = validation_message(exc)
                    err.validation_errors = exc.errors()  # for dialects that answer every error (OctoAI)
                return render(err, status_of(err))
            except PixelserveError as exc:
                return render(exc, status_of(exc))
            except HTTPException as exc:
                # FastAPI's own refusals inside a dialect route still answer in the vendor's shape.
                err = FRAMEWORK_ERRORS.get(exc.status_code)
                if err is None:
                    raise
                err = unreadable or err(str(exc.detail))  # the framework's reason (a form's part limit ...)
                return render(err, status_of(err))
            except ClientDisconnect:  # hung up mid-body: a normal event; the answer goes nowhere
                log.debug("client hung up mid-body on %s", request.url.path)
                return render(Cancelled("the client closed the connection"), 499)
            except Exception as exc:  # a bug; the client still gets the vendor's error shape
                log.exception("unhandled error on %s", request.url.path)
                return render(PixelserveError(f"internal error ({type(exc).__name__})"), 500)

        async def limited(request: Request) -> Response:
            """The failed-authentication limit (service/auth_limits.py): checked before the body is read."""
            limits = getattr(request.app.state, "auth_limits", None)
            if limits is None:
                return await route(request)
            attempt = limits.attempt(request.client.host if request.client else None, request.headers)
            try:
                await limits.admit(attempt)
            except PixelserveError as exc:
                return render(exc, status_of(exc))
            response = await route(request)
            if response.status_code == 401:
                limits.failed(attempt)
            return response

        return limited


#: Only successful answers are kept for an Idempotency-Key (as Stripe does): a refused request
#: (bad input, no credits, busy) wrote nothing, so its retry must really run again.
def kept(status_code: int) -> bool:
    return 200 <= status_code < 300


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
        if response is not None and kept(response.status_code) and isinstance(body_bytes, bytes):
            answer = idempotency.StoredAnswer(response.status_code, response.headers.get("content-type"), body_bytes)
            await asyncio.shield(asyncio.to_thread(idempotency.finish, sessions, scope, key, answer))
        else:
            await asyncio.shield(asyncio.to_thread(idempotency.release, sessions, scope, key))
