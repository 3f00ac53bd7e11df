"""OctoAI image generation: parse, resolve assets, translate, call the service, translate back.

Errors and the API key: route.py. The asset library's routes: library.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Request

from pixelserve.core.json_response import JSONResponse
from pixelserve.core.model_config import ModelsConfig
from pixelserve.dialects.octoai import library, translate
from pixelserve.dialects.octoai.config import OctoAIConfig
from pixelserve.dialects.octoai.config import load as load_config
from pixelserve.dialects.octoai.protocol import ImageGenerationRequest, ImageGenerationResponse
from pixelserve.dialects.octoai.route import ERRORS, Key, OctoAIRoute
from pixelserve.http.deps import Assets, Service, SettingsDep
from pixelserve.http.route import client_gone
from pixelserve.service import job_options
from pixelserve.service.asset_refs import scope_of
from pixelserve.service.pipeline import cancel_on_disconnect

router = APIRouter(route_class=OctoAIRoute, tags=["OctoAI"])


def octoai_config(request: Request) -> OctoAIConfig:
    return request.app.state.octoai_config


def engine_target(config: Annotated[OctoAIConfig, Depends(octoai_config)], service: Service,
                  engine_id: Annotated[str, Path(max_length=100)]) -> translate.EngineTarget:
    """The configured model behind an engine id; unknown engines are 404 whatever the body says."""
    model = service.model_info(config.engine_model(engine_id))
    return translate.EngineTarget(engine_id=engine_id, model_id=model.id, family=model.family)


Engine = Annotated[translate.EngineTarget, Depends(engine_target)]


@router.post("/generate/{engine_id}", response_model=ImageGenerationResponse, responses=ERRORS)
async def generate(body: ImageGenerationRequest, request: Request, key: Key, engine: Engine, service: Service,
                   assets: Assets, settings: SettingsDep) -> JSONResponse:
    """Generate images with engine sdxl, sd, controlnet-sdxl or controlnet-sd15."""
    job_options.set_webhook_from_body(body.webhook_url)
    resolved = assets.lazy(scope_of(key), engine.family, translate.asset_lookup)
    gen = await asyncio.to_thread(translate.request_from_wire, body, engine, resolved,
                                  max_pixels=service.limits.max_pixels, extra_sizes=settings.octoai_sizes)
    started = time.perf_counter()
    result = await cancel_on_disconnect(client_gone(request), service.generate(
        gen, dialect="octoai", key=key, output=translate.output_options(body), record_prompt=body.log_prompt))
    run_ms = result.timings_ms.get("run", (time.perf_counter() - started) * 1e3)
    return JSONResponse(translate.result_to_wire(result, run_ms, settings.nsfw_threshold))


#: How a client points at this dialect ({base}: the server's URL, {key}: an API key), shown at start.
CLIENT_HINT = "OctoAI  POST {base}/generate/sdxl               Authorization: Bearer {key}   (SDK: OctoAI(api_key=KEY, environment=OctoAIEnvironment(default=URL, image_gen=URL, text_gen=URL)))"


def mount(app: FastAPI, models: ModelsConfig) -> OctoAIConfig:
    """OctoAI's routes, and its [octoai] tables parsed (a bad one fails here, at start)."""
    app.state.client_hints.append(CLIENT_HINT)
    app.state.octoai_config = load_config(models)
    app.include_router(router)
    app.include_router(library.files_router)  # before the library's GET /v1/assets/{ref:path}
    app.include_router(library.router)
    return app.state.octoai_config
