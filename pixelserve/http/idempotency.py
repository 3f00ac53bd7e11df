"""``Idempotency-Key`` at the HTTP edge: one run per (caller, key), its answer replayed to retries
(the rules and the stored answers: service/idempotency.py)."""

from __future__ import annotations

import asyncio
from typing import Callable

from fastapi import Request, Response

from pixelserve.errors import PixelserveError, status_of
from pixelserve.service import idempotency


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
