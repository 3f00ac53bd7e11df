"""What every A1111 route shares: A1111's error body and the API key.

Errors: ``{"error": <exception class name>, "detail", "body", "errors"}`` with the status of the
domain error (modules/api/api.py ``handle_exception``), except request validation errors, which
A1111 leaves to FastAPI: 422 ``{"detail": [{"loc", "msg", "type"}]}`` (spec B.2); any other invalid
value is a 400 (A1111 answers 500 for some, bad base64 for one: bad input is never a 5xx here).
The key: HTTP Basic as ``--api-auth`` (the username is ignored, the password is a pixelserve API
key), or ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Callable

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from pixelserve.core.json_response import JSONResponse
from pixelserve.errors import InvalidRequest, PixelserveError, Unauthorized, UnsupportedMediaType
from pixelserve.http.deps import Auth
from pixelserve.http.route import DialectRoute
from pixelserve.service.auth import Caller


class ErrorBody(BaseModel):
    error: str
    detail: str
    body: str
    errors: str


class A1111Route(DialectRoute):
    error_model = ErrorBody

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        errors = getattr(exc, "validation_errors", None)
        if errors:  # A1111 registers no RequestValidationError handler: FastAPI's own 422 body
            detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                      for e in errors]
            return JSONResponse({"detail": detail}, status_code=422)
        if isinstance(exc, InvalidRequest) and not isinstance(exc, UnsupportedMediaType):
            status = 400  # A1111's own refusals ("Sampler not found") are 400s; errors.STATUS says 422
        body = {"error": type(exc).__name__, "detail": str(exc), "body": "", "errors": str(exc)}
        headers = {"WWW-Authenticate": "Basic"} if status == 401 else {}
        return JSONResponse(body, status_code=status, headers=headers)

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def timed(request: Request) -> Response:
            """A1111's ``X-Process-Time`` (its ``log_and_time`` middleware): seconds, 4 decimals."""
            start = time.perf_counter()
            response = await handler(request)
            response.headers["X-Process-Time"] = f"{time.perf_counter() - start:.4f}"
            return response

        return timed


def a1111_key(auth: Auth, authorization: Annotated[str | None, Header()] = None) -> Caller | None:
    """HTTP Basic (webuiapi's ``username``/``password``: the password is the key) or Bearer."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            _user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep, password = "", ""
        if not sep:
            raise Unauthorized("Incorrect username or password")
        return auth.check(password)
    if scheme == "bearer":
        return auth.check(value)
    if auth.enabled:
        raise Unauthorized("Not authenticated")
    return auth.check(None)


Key = Annotated[Caller | None, Depends(a1111_key)]
