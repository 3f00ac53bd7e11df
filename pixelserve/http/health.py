"""Liveness and readiness (models loaded, queue, draining) for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pixelserve.core.json_response import JSONResponse

router = APIRouter(tags=["health"])


class Live(BaseModel):
    status: str


class ModelState(BaseModel):
    id: str
    family: str
    loaded: bool
    demo: bool


class Ready(BaseModel):
    status: str  # ready | loading | error | draining
    devices: list[str]
    queue_depth: int
    queue_capacity: int
    running: int
    models: list[ModelState]
    error: str | None = None
    waiting: str | None = None  # while loading: what holds it up (e.g. a Ray replica no node has room for)


@router.get("/health/live", response_model=Live)
async def live() -> dict:
    """The process is up (models may still be loading)."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=Ready, responses={503: {"model": Ready, "description": "Not ready"}})
async def ready(request: Request) -> JSONResponse:
    """200 once every configured model is loaded; 503 before, when loading failed, or while draining."""
    h = request.app.state.engine.health()
    draining = getattr(request.app.state, "draining", False)
    ready = h.ready and not draining
    body = {
        "status": "draining" if draining else "ready" if h.ready else ("error" if h.loading_error else "loading"),
        "devices": list(h.devices), "queue_depth": h.queue_depth, "queue_capacity": h.queue_capacity,
        "running": h.running,
        "models": [{"id": m.id, "family": m.family, "loaded": m.loaded, "demo": m.demo}
                   for m in request.app.state.engine.models()],
    }
    if h.loading_error:
        body["error"] = h.loading_error
    if h.waiting and not h.ready:
        body["waiting"] = h.waiting
    return JSONResponse(body, status_code=200 if ready else 503)
