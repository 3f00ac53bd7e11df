"""What every Studio route shares: NestJS-shaped errors, the ``X-Api-Key`` header, and who owns what.

Every failure answers ``{"statusCode": <int>, "message": "<field>: <reason>", "error": "<HTTP phrase>"}``
(402 adds the caller's three balances); invalid input is 400, as the platform answers it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.studio.protocol import ErrorBody
from pixelserve.errors import InvalidRequest, PaymentRequired, PixelserveError
from pixelserve.http.deps import Auth
from pixelserve.http.errors import phrase
from pixelserve.http.route import DialectRoute
from pixelserve.service.auth import Caller


class StudioRoute(DialectRoute):
    error_model = ErrorBody

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        if isinstance(exc, InvalidRequest):
            status = 400  # the platform answers invalid fields and headers with 400
        body = {"statusCode": status, "message": str(exc), "error": phrase(status)}
        if isinstance(exc, PaymentRequired):
            body.update(exc.detail)
        return JSONResponse(body, status_code=status)


def studio_key(auth: Auth, x_api_key: Annotated[str | None, Header(alias="X-Api-Key")] = None) -> Caller | None:
    return auth.check((x_api_key or "").strip())


Key = Annotated[Caller | None, Depends(studio_key)]


def owner_of(key: Caller | None) -> int:
    """The API key's id owns images and credits; 0 when auth is disabled (one shared owner)."""
    return key.id if key is not None else 0
