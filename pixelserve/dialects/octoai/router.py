"""OctoAI image generation: parse, resolve assets, translate, call the service, translate back.

Errors answer as OctoAI's FastAPI server does: 422 ``{"detail": [{"loc", "msg", "type"}]}`` for
every invalid field (and the service's own InvalidRequest, ``loc`` naming its field), else
``{"detail": "<reason>"}`` with the status of ``errors.STATUS`` (401 Bearer, 404 unknown engine or
asset, 409, 413, 429/503 with Retry-After, 501 not supported).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.base import DialectRoute, client_gone
from pixelserve.dialects.octoai import translate
from pixelserve.dialects.octoai.protocol import ENGINES, ErrorBody, HTTPValidationError, ImageGenerationRequest, \
    ImageGenerationResponse
from pixelserve.errors import InvalidRequest, NotFound, PixelserveError, Unauthorized
from pixelserve.routes.deps import get_auth, get_service
from pixelserve.service.assets import AssetService, ResolvedAsset, scope_of
from pixelserve.service.auth import Caller
from pixelserve.service.generation import GenerationService, cancel_on_disconnect


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
                loc = ["body", *exc.field.split(".")] if exc.field else ["body"]
                detail = [{"loc": loc, "msg": exc.message, "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


router = APIRouter(route_class=OctoAIRoute, tags=["OctoAI"])
ERRORS = {422: {"model": HTTPValidationError}}


def octoai_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller | None:
    """``Authorization: Bearer <token>``."""
    auth = get_auth(request)
    scheme, _, token = (authorization or "").strip().partition(" ")
    if auth.enabled and scheme.lower() != "bearer":
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return auth.check(token.strip())


def get_assets(request: Request) -> AssetService:
    return request.app.state.assets


def engine_target(request: Request,
                  engine_id: Annotated[str, Path(max_length=100)]) -> translate.EngineTarget:
    """The configured model behind an engine id; unknown engines are 404 whatever the body says."""
    if engine_id not in ENGINES:
        raise NotFound(f"unknown engine {engine_id!r}; one of {', '.join(ENGINES)}")
    model_id = request.app.state.octoai_config.engines.get(engine_id)
    if model_id is None:
        raise NotFound(f"engine {engine_id} is not configured on this server")
    model = get_service(request).model_info(model_id)
    return translate.EngineTarget(engine_id=engine_id, model_id=model.id, family=model.family)


Key = Annotated[Caller | None, Depends(octoai_key)]
Engine = Annotated[translate.EngineTarget, Depends(engine_target)]
Service = Annotated[GenerationService, Depends(get_service)]
Assets = Annotated[AssetService, Depends(get_assets)]


class ResolvedAssets(Mapping):
    """(field, wire name) -> the asset, resolved when translate first reads it (after the field checks)."""

    def __init__(self, assets: AssetService, scope: str, family: str):
        self._assets, self._scope, self._family = assets, scope, family
        self._done: dict[tuple[str, str], ResolvedAsset] = {}

    def __getitem__(self, ref: tuple[str, str]) -> ResolvedAsset:
        if ref not in self._done:
            field, wire = ref
            public, name = translate.asset_name(wire)
            where = field if field in ("checkpoint", "vae", "controlnet") else f"{field}.{wire}"
            self._done[ref] = self._assets.resolve(self._scope, name=name, public=public,
                                                   kind=translate.ASSET_FIELDS[field], family=self._family,
                                                   field=where, shown=wire)
        return self._done[ref]

    def __iter__(self):
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done)


@router.post("/generate/{engine_id}", response_model=ImageGenerationResponse, responses=ERRORS)
async def generate(body: ImageGenerationRequest, request: Request, key: Key, engine: Engine, service: Service,
                   assets: Assets) -> JSONResponse:
    """Generate images with engine sdxl, sd, controlnet-sdxl or controlnet-sd15."""
    settings = request.app.state.settings
    resolved = ResolvedAssets(assets, scope_of(key), engine.family)
    gen = await asyncio.to_thread(translate.request_from_wire, body, engine, resolved,
                                  max_pixels=service.limits.max_pixels, extra_sizes=settings.octoai_sizes)
    started = time.perf_counter()
    result = await cancel_on_disconnect(client_gone(request), service.generate(
        gen, dialect="octoai", key=key, output=translate.output_options(body), record_prompt=body.log_prompt))
    run_ms = result.timings_ms.get("run", (time.perf_counter() - started) * 1e3)
    return JSONResponse(translate.result_to_wire(result, run_ms, settings.nsfw_threshold))
