"""OpenAI Images API endpoints: parse, translate, call the service, translate back.

Each route is served with and without the ``/v1`` prefix (clients whose base URL lacks it); the
prefixless twins stay out of the OpenAPI schema. Errors and the API key: route.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Form, Request, Response, UploadFile

from pixelserve.core.json_response import JSONResponse
from pixelserve.core.model_config import ModelsConfig
from pixelserve.dialects.openai import streaming, translate
from pixelserve.dialects.openai.config import OpenAIConfig
from pixelserve.dialects.openai.config import load as load_config
from pixelserve.dialects.openai.protocol import (EditForm, GenerateRequest, ImagesResponse, ModelList,
                                                 VariationForm)
from pixelserve.dialects.openai.route import Key, OpenAIRoute
from pixelserve.http.deps import BaseUrl, Service, SettingsDep
from pixelserve.http.route import client_gone
from pixelserve.service.pipeline import Pipeline, cancel_on_disconnect
from pixelserve.settings import Settings

router = APIRouter(route_class=OpenAIRoute, tags=["OpenAI"])

Files = Annotated[list[UploadFile] | None, File()]


def _config(request: Request) -> OpenAIConfig:
    return request.app.state.openai_config


def _target(service: Pipeline, name: str, model_id: str) -> translate.Target:
    m = service.model_info(model_id)
    return translate.Target(name=name, model_id=m.id, family=m.family, tasks=tuple(m.tasks), demo=m.demo,
                            image_prompt=m.image_prompt)


async def _run(request: Request, service: Pipeline, key, plan: translate.Plan, root: str,
               settings: Settings, kind: str = "image_generation") -> Response:
    if plan.stream:
        return await streaming.stream_answer(request, service, key, plan, kind, settings.nsfw_threshold)
    result = await cancel_on_disconnect(client_gone(request), service.generate(
        plan.request, dialect="openai", key=key, output=plan.output, record=plan.record))
    translate.check_moderation(result, settings.nsfw_threshold)
    value = translate.image_value(
        plan, lambda im: service.image_url(root, im.storage_key, ttl=translate.URL_TTL_SECONDS))
    # The SDK exposes x-request-id as ``.request_id``: the job's id, for the jobs API and the logs.
    return JSONResponse(translate.result_to_wire(plan, result, value, int(time.time())),
                        headers={"x-request-id": result.job_id})


async def _read(files: list[UploadFile] | None) -> list[bytes]:
    return [await f.read() for f in files or ()]


@router.post("/v1/images/generations", response_model=ImagesResponse)
@router.post("/images/generations", response_model=ImagesResponse, include_in_schema=False)
async def generations(body: GenerateRequest, request: Request, key: Key, service: Service, root: BaseUrl,
                      settings: SettingsDep) -> JSONResponse:
    """Create image."""
    name = body.model or "dall-e-2"
    target = _target(service, name, _config(request).model_for(name))
    plan = translate.generation_to_request(body, target, service.limits.max_pixels)
    return await _run(request, service, key, plan, root, settings)


@router.post("/v1/images/edits", response_model=ImagesResponse)
@router.post("/images/edits", response_model=ImagesResponse, include_in_schema=False)
async def edits(form: Annotated[EditForm, Form()], request: Request, key: Key, service: Service, root: BaseUrl,
                settings: SettingsDep, image: Files = None,
                images: Annotated[list[UploadFile] | None, File(alias="image[]")] = None,
                mask: Annotated[UploadFile | None, File()] = None) -> JSONResponse:
    """Create image edit: ``image`` (one file) or repeated ``image[]``, optional ``mask``."""
    name = form.model or "gpt-image-1.5"
    target = _target(service, name, _config(request).model_for(name))
    raw = await _read(image) + await _read(images)
    mask_raw = None if mask is None else await mask.read()
    plan = await asyncio.to_thread(translate.edit_to_request, form, raw, mask_raw, target,
                                   service.limits.max_pixels)
    return await _run(request, service, key, plan, root, settings, kind="image_edit")


@router.post("/v1/images/variations", response_model=ImagesResponse)
@router.post("/images/variations", response_model=ImagesResponse, include_in_schema=False)
async def variations(form: Annotated[VariationForm, Form()], image: Annotated[UploadFile, File()], request: Request,
                     key: Key, service: Service, root: BaseUrl, settings: SettingsDep) -> JSONResponse:
    """Create image variation."""
    name = form.model or "dall-e-2"
    target = _target(service, name, _config(request).variation_model_for(name))
    plan = await asyncio.to_thread(translate.variation_to_request, form, await image.read(), target,
                                   service.limits.max_pixels)
    return await _run(request, service, key, plan, root, settings)


@router.get("/v1/models", response_model=ModelList)
@router.get("/models", response_model=ModelList, include_in_schema=False)
async def models(request: Request, key: Key, service: Service) -> JSONResponse:
    """List models: the image models served here, then the OpenAI names mapped onto them."""
    config = _config(request)
    served = {m.id for m in service.engine.models()}
    created = int(request.app.state.openai_created)
    data = [{"id": mid, "object": "model", "created": created, "owned_by": "pixelserve"} for mid in sorted(served)]
    data += [{"id": name, "object": "model", "created": created, "owned_by": f"pixelserve:{mid}"}
             for name, mid in config.names.items() if mid in served and name not in served]
    return JSONResponse({"object": "list", "data": data})


#: How a client points at this dialect ({base}: the server's URL, {key}: an API key), shown at start.
CLIENT_HINT = "OpenAI  POST {base}/v1/images/generations       Authorization: Bearer {key}   (SDK: OpenAI(base_url=URL/v1, api_key=KEY))"


def mount(app: FastAPI, models: ModelsConfig) -> OpenAIConfig:
    """OpenAI's routes, and its [openai] table parsed (a bad one fails here, at start)."""
    app.state.client_hints.append(CLIENT_HINT)
    app.state.openai_config = load_config(models)
    app.state.openai_created = time.time()
    app.include_router(router)
    return app.state.openai_config
