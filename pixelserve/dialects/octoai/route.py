"""What every OctoAI route shares: errors answered as OctoAI's FastAPI server does, and its API key.

422 ``{"detail": [{"loc", "msg", "type"}]}`` for every invalid field (and the service's own
InvalidRequest, ``loc`` naming its field), else ``{"detail": "<reason>"}`` with the status of
``errors.STATUS`` (401 Bearer, 404 unknown engine or asset, 409, 413, 429/503 with Retry-After,
501 not supported).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.octoai.protocol import ErrorBody, HTTPValidationError
from pixelserve.errors import InvalidRequest, PixelserveError, Unauthorized
from pixelserve.http.deps import Auth
from pixelserve.http.route import DialectRoute
from pixelserve.service.auth import Caller


class OctoAIRoute(DialectRoute):
    error_model = ErrorBody

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        if isinstance(exc, InvalidRequest):
            errors = getattr(exc, "validation_errors", None)
            if errors:
                detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                          for e in errors]
            else:
                loc = [exc.location, *exc.field.split(".")] if exc.field else [exc.location]
                detail = [{"loc": loc, "msg": exc.message, "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


#: OpenAPI: the 422 body of a route with a request body or parameters.
ERRORS = {422: {"model": HTTPValidationError}}


def octoai_key(auth: Auth, authorization: Annotated[str | None, Header()] = None) -> Caller | None:
    """``Authorization: Bearer <token>``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if auth.enabled and scheme.lower() != "bearer":
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return auth.check(token.strip())


Key = Annotated[Caller | None, Depends(octoai_key)]
