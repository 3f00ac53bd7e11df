"""The caller's own webhook secret: ``GET /v1/webhooks/secret``, ``POST /v1/webhooks/secret/rotate``.

Any dialect's way of sending the key works here (``Authorization: Bearer <key>``, ``Authorization:
KakaoAK <key>``, ``X-Api-Key: <key>``), under the same failed-authentication limit. Errors answer
``{"detail": "<reason>"}``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pixelserve.core.json_response import JSONResponse
from pixelserve.errors import NotSupported, PixelserveError, status_of
from pixelserve.service.auth import Caller
from pixelserve.service.auth_limits import credential_of

router = APIRouter(tags=["webhooks"])


class Secret(BaseModel):
    secret: str  # whsec_<base64>: verify deliveries with it (Standard Webhooks)
    webhook_url: str | None  # the key's default target (pixelserve keys webhook ID URL)


class Detail(BaseModel):
    detail: str


ERRORS = {s: {"model": Detail} for s in (401, 429, 501)}


async def _caller(request: Request) -> Caller | None:
    """The key the request carries, under the failed-authentication limit; raises Unauthorized."""
    limits = getattr(request.app.state, "auth_limits", None)
    attempt = limits.attempt(request.client.host if request.client else None, request.headers) if limits else None
    if limits is not None:
        try:
            await limits.admit(attempt)
        except PixelserveError:
            await limits.hold()
            raise
    key = credential_of(request.headers.get("authorization"), request.headers.get("x-api-key"))
    try:
        return await asyncio.to_thread(request.app.state.auth.check, key)
    except PixelserveError:
        if limits is not None:
            limits.failed(attempt)
        raise


async def _answer(request: Request, rotate: bool) -> JSONResponse:
    try:
        caller = await _caller(request)
        if caller is None and rotate:
            raise NotSupported("without API keys (auth disabled) the one webhook secret is the server's: delete "
                               "secrets/webhooks.key in the data dir and restart to replace it")
        outbox = request.app.state.webhooks
        secret = await asyncio.to_thread(outbox.secret, caller.id if caller else None, rotate=rotate)
        url = await asyncio.to_thread(outbox.default_url, caller.id) if caller else None
    except PixelserveError as e:
        headers = {"WWW-Authenticate": "Bearer"} if status_of(e) == 401 else {}
        if e.retry_after is not None:
            headers["Retry-After"] = str(e.retry_after)
        return JSONResponse({"detail": str(e)}, status_code=status_of(e), headers=headers)
    return JSONResponse({"secret": secret, "webhook_url": url}, headers={"Cache-Control": "no-store"})


@router.get("/v1/webhooks/secret", response_model=Secret, responses=ERRORS)
async def get_secret(request: Request) -> JSONResponse:
    """The secret the caller's webhooks are signed with (made on first request), and the key's default URL."""
    return await _answer(request, rotate=False)


@router.post("/v1/webhooks/secret/rotate", response_model=Secret, responses=ERRORS)
async def rotate_secret(request: Request) -> JSONResponse:
    """Replaces the caller's secret at once: every attempt from now on, retries of earlier
    deliveries included, is signed with the new one."""
    return await _answer(request, rotate=True)
