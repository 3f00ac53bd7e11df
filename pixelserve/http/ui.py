"""The playground (``/``) and the status page (``/ui/status``): hand-written static files shipped in
``pixelserve/ui/``, served with a strict Content-Security-Policy (no inline script or style, nothing
from another origin). Two small JSON routes, authenticated like the jobs API (any dialect's header):
``GET /v1/ui/config`` (the models and their families, for the size presets) and ``GET /v1/ui/stats``
(the status page's numbers: engine, queue, jobs per minute and latency over the last hour).

The API key never travels in a URL: the pages keep it in localStorage and send it as a header.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from pixelserve.http.deps import SettingsDep
from pixelserve.http.jobs import JobsRoute, Key
from pixelserve.service.job_stats import recent_stats

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
])
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
#: The files /ui/static/ serves: flat names only, so no path can leave UI_DIR.
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")

#: How `pixelserve serve` announces the playground beside each dialect's line.
CLIENT_HINT = "Browser playground: open {base}/ and paste the API key {key}   (server status: {base}/ui/status)"

pages = APIRouter(include_in_schema=False)
#: The pages' own JSON, no API of record: left out of the OpenAPI schema (it has no input but the key).
router = APIRouter(route_class=JobsRoute, tags=["ui"], include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = UI_DIR / name
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@pages.api_route("/", methods=["GET", "HEAD"])
async def playground() -> FileResponse:
    return _file("index.html")


@pages.get("/ui")
@pages.get("/ui/")
async def to_playground() -> RedirectResponse:
    return RedirectResponse("/", status_code=307)


@pages.api_route("/ui/status", methods=["GET", "HEAD"])
async def status_page() -> FileResponse:
    return _file("status.html")


@pages.get("/ui/static/{name}")
async def static(name: str) -> Response:
    if not STATIC_NAME.match(name) or not (UI_DIR / name).is_file():
        return PlainTextResponse("not found", status_code=404, headers=HEADERS)
    return _file(name)


def _models(request: Request) -> list[dict]:
    return [{"id": m.id, "family": m.family, "loaded": m.loaded, "demo": m.demo}
            for m in request.app.state.engine.models()]


@router.get("/v1/ui/config")
async def ui_config(request: Request, key: Key, settings: SettingsDep) -> dict:
    """What the playground's form needs besides the OpenAPI schema: the models with their families
    (size presets per family) and the sizes the server accepts besides each family's standard ones."""
    return {"models": _models(request), "extra_sizes": [list(s) for s in settings.octoai_sizes],
            "max_pixels": settings.max_image_pixels}


@router.get("/v1/ui/stats")
async def ui_stats(request: Request, key: Key) -> dict:
    """The status page's numbers: devices, models (loaded or not), queue, and over the last hour the
    jobs ended per minute with the p50/p95 latency of the succeeded ones."""
    state = request.app.state
    h = state.engine.health()
    stats = await asyncio.to_thread(recent_stats, state.sessions, datetime.now(timezone.utc))
    engine = {"ready": h.ready, "devices": list(h.devices), "queue_depth": h.queue_depth,
              "queue_capacity": h.queue_capacity, "running": h.running, "error": h.loading_error,
              "draining": bool(getattr(state, "draining", False))}
    return {"engine": engine, "models": _models(request), "last_hour": stats}


def mount(app: FastAPI) -> None:
    """The pages, their JSON routes, and the playground's line in `serve`'s start-up hints."""
    app.state.client_hints.append(CLIENT_HINT)
    app.include_router(pages)
    app.include_router(router)
