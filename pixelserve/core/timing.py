"""Where a request's time goes, as a W3C ``Server-Timing`` response header (off by default).

With ``PIXELSERVE_SERVER_TIMING=true`` every HTTP answer carries e.g.
``Server-Timing: auth;dur=0.7, admit;dur=2.1, engine;dur=265.9, store;dur=4.2, finish;dur=2.0,
app;dur=277.6`` (milliseconds; ``app`` is the whole time inside the application,
from the request's first byte to the answer's headers). Browsers' developer tools show it, and
bench/perf_cpu.py reads it to say what the server adds around the engine. It is off by default
because it tells a caller how long internal steps (the key check among them) took.

The stages are collected whether the header is on or not when ``/metrics`` is on
(``pixelserve_stage_seconds``, http/metrics.py): the middleware that runs first starts the dict
(``begin``), the other adds to it.

The stages are kept in a dict that the middleware puts in a context variable: code running for the
request, on the event loop or on a worker thread started with ``asyncio.to_thread`` (which copies the
context), adds to that same dict through ``stage()`` or ``record()``.

Hand-written because it is a few lines over the ASGI interface, and Starlette has no such middleware.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Iterator

_STAGES: ContextVar[dict[str, float] | None] = ContextVar("pixelserve_server_timing", default=None)


def record(name: str, ms: float) -> None:
    """Adds ``ms`` to stage ``name`` of the current request (nothing when timing is off)."""
    stages = _STAGES.get()
    if stages is not None:
        stages[name] = stages.get(name, 0.0) + ms


@contextmanager
def stage(name: str) -> Iterator[None]:
    if _STAGES.get() is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        record(name, (time.perf_counter() - started) * 1e3)


def begin() -> tuple[dict[str, float], Token | None]:
    """The current request's stages, collected from here on unless something (an outer middleware:
    /metrics observes the stages too) already collects them; ``end(token)`` when the request is done."""
    stages = _STAGES.get()
    if stages is not None:
        return stages, None
    stages = {}
    return stages, _STAGES.set(stages)


def end(token: Token | None) -> None:
    if token is not None:
        _STAGES.reset(token)


def header_value(stages: dict[str, float]) -> bytes:
    return ", ".join(f"{name};dur={ms:.2f}" for name, ms in stages.items()).encode()


class ServerTimingMiddleware:
    """Pure ASGI middleware: adds ``Server-Timing`` to each HTTP answer's headers."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stages, token = begin()
        started = time.perf_counter()

        async def send_with_timing(message) -> None:
            if message["type"] == "http.response.start":
                stages["app"] = (time.perf_counter() - started) * 1e3
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", header_value(stages))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            end(token)
