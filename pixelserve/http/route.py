"""What every dialect's routes share: body limits, strict JSON, errors rendered in the vendor's
shape (and documented in the OpenAPI schema), ``Idempotency-Key``, and noticing a client hang up.

Each dialect subclasses ``DialectRoute``, says how its vendor writes an error body (``render``) and
gives the pydantic model of that body (``error_model``). Validation errors become
``InvalidRequest`` naming the field; a domain error keeps its status from ``errors.STATUS`` unless
the vendor documents another; anything unexpected is logged and rendered as the vendor's internal
error.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi import Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from pixelserve import errors
from pixelserve.errors import (BodyTooLarge, Cancelled, InvalidRequest, PixelserveError, RequestTimeout,
                               UnsupportedMediaType, status_of)
from pixelserve.http.body import check_length, is_json, parse_json, read_body
from pixelserve.http.errors import FRAMEWORK_ERRORS, phrase, validation_message
from pixelserve.http.idempotency import idempotent
from pixelserve.service import job_options

log = logging.getLogger(__name__)

#: Stands in for a JSON body that could not be read, so FastAPI's validation fails after the
#: route's dependencies (authentication) ran, and the reason is reported then.
_UNREADABLE = object()


async def client_gone(request: Request) -> None:
    """Returns once the client has closed the connection (for service.pipeline.cancel_on_disconnect).

    After the body has been read, the server's next ASGI message for this request is
    ``http.disconnect``: it arrives when the connection drops (or the answer has gone out), so one
    waiting ``receive()`` replaces polling ``request.is_disconnected()``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
            try:
                options = job_options.from_headers(request.headers)
            except PixelserveError as exc:
                return render(exc, status_of(exc))
            token = job_options.set_current(options)
            try:
                response = await serve(request)
            finally:
                job_options.reset(token)
            if options.job_ids and 200 <= response.status_code < 300:
                response.headers["X-Job-Id"] = options.job_ids[0]
            return response

        async def serve(request: Request) -> Response:
            unreadable: InvalidRequest | None = None  # reported after authentication, when validation fails
            try:
                limit = getattr(request.app.state, "max_body_bytes", self.max_body_bytes)
                check_length(request, limit)
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
                await limits.hold()
                return render(exc, status_of(exc))
            response = await route(request)
            if response.status_code == 401:
                limits.failed(attempt)
            return response

        return limited
