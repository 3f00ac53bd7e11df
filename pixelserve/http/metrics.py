"""``GET /metrics`` (Prometheus text format) and the middleware that counts every HTTP answer.

On by default (``PIXELSERVE_METRICS=false``: no route, no middleware, no subscriber). With
``PIXELSERVE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``. What is
counted where: service/metrics.py.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from pixelserve.core import timing
from pixelserve.service.events import EventBus
from pixelserve.service.metrics import Metrics
from pixelserve.settings import Settings

router = APIRouter(tags=["metrics"])
#: Route labels for answers no route matched (404s of scanners): one label, not one per path tried.
UNMATCHED = "unmatched"
NO_DIALECT = "none"


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return Response("a metrics token is required: Authorization: Bearer <token>\n", status_code=401,
                            media_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
    # Off the event loop: a scrape formats thousands of lines (tens of ms on a slow CPU) that requests
    # in flight would otherwise wait behind; the client library's metrics are thread-safe.
    body, content_type = await asyncio.to_thread(request.app.state.metrics.render, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


@functools.lru_cache(maxsize=256)
def _dialect_of_class(cls: type) -> str:
    explicit = getattr(cls, "dialect", None)
    if isinstance(explicit, str):
        return explicit
    parts = cls.__module__.split(".")
    if len(parts) > 2 and parts[:2] == ["pixelserve", "dialects"]:
        return parts[2]
    return NO_DIALECT


def dialect_of(route: Any) -> str:
    """The dialect a route belongs to: its route class's package (pixelserve/dialects/<name>/), or
    the class's own ``dialect``; routes of no dialect (health, images, jobs, metrics) are "none"."""
    return _dialect_of_class(type(route))


class MetricsMiddleware:
    """Pure ASGI: counts each answer by dialect, route template (never the raw path: bounded label
    values) and status, times it to its headers (a long stream's length is not its latency), and
    observes its Server-Timing stages."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stages, token = timing.begin()
        started = time.perf_counter()
        answered = False

        def count(status: int) -> None:
            route = scope.get("route")  # set by the router once a route matched
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED
            self.metrics.request_answered(dialect_of(route) if route is not None else NO_DIALECT, template,
                                          status, time.perf_counter() - started)

        async def send_counted(message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except BaseException as exc:
            if not answered:  # the error middleware outside answers 500; a cancelled request, nobody
                answered = True
                count(499 if isinstance(exc, asyncio.CancelledError) else 500)
            raise
        finally:
            timing.end(token)
            self.metrics.stages(stages)


def install(app: FastAPI, settings: Settings, bus: EventBus) -> Metrics | None:
    """/metrics, the middleware and the event subscriber, unless ``settings.metrics`` is off."""
    if not settings.metrics:
        return None
    metrics = Metrics(bus)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(router)
    return metrics
