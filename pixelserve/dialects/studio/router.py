"""Studio endpoints: parse, translate, call the service, translate back.

Errors, the API key and who owns what: route.py. Styles and collections: library.py.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Header, Query, Request, UploadFile

from pixelserve.core.json_response import JSONResponse
from pixelserve.core.model_config import ModelsConfig
from pixelserve.dialects.studio import library, translate
from pixelserve.dialects.studio.protocol import (CreateRequest, Credits, ImagesResponse, RecordId, UploadResponse,
                                                 UpscaleRequest)
from pixelserve.dialects.studio.route import Key, StudioRoute, owner_of
from pixelserve.errors import InvalidRequest
from pixelserve.http.deps import Studio
from pixelserve.http.route import client_gone
from pixelserve.service import job_options
from pixelserve.service.pipeline import cancel_on_disconnect
from pixelserve.service.studio import StudioService


router = APIRouter(route_class=StudioRoute, tags=["Studio"])


def defaults(request: Request) -> translate.Defaults:
    s = request.app.state.settings
    return translate.Defaults(steps=s.studio_steps, guidance_scale=s.studio_guidance_scale,
                              reference_strength=s.studio_reference_strength, resolutions=s.studio_resolutions,
                              reference_scale=s.studio_reference_scale)


async def _answer(studio: StudioService, ids: list[int], owner: int, with_data: bool = True) -> JSONResponse:
    views = await asyncio.to_thread(studio.views, ids, with_data=with_data)
    balances = await asyncio.to_thread(studio.balances, owner)
    return JSONResponse(translate.response(views, balances, owner))


@router.post("/api/images/create", response_model=ImagesResponse)
async def create(body: CreateRequest, request: Request, key: Key, studio: Studio,
                 x_type: Annotated[str | None, Header(alias="X-Type")] = None,
                 x_platform: Annotated[str | None, Header(alias="X-Platform")] = None) -> JSONResponse:
    """Create images: (reference image + prompt) OR (style + prompt) OR (collection + prompt)."""
    platform = translate.check_platform(x_platform)
    job_options.set_webhook_from_body(body.webhook_url)
    if x_type is not None and len(x_type) > 100:
        raise InvalidRequest("must be at most 100 characters", field="X-Type")
    owner = owner_of(key)
    inputs = await studio.inputs(owner, key, style_id=body.styleId, collection_id=body.collectionId, image=body.image,
                                 prompt_to_translate=body.prompt if translate.needs_translation(body) else None,
                                 lora_field=translate.style_field(body))
    style = translate.style_spec(inputs.style) if inputs.style is not None else None
    gen = translate.create_to_request(body, model_id=inputs.model.id, family=inputs.model.family,
                                      defaults=defaults(request), style=style, reference=inputs.reference,
                                      translated=inputs.translated, style_lora=inputs.style_lora,
                                      image_prompt=inputs.model.image_prompt)
    job = await studio.create(owner, key.id if key else None, gen,
                              translate.record_info(body, platform, x_type, style, inputs.translated),
                              reference_key=inputs.reference_key, ratio=translate.ratio_of(body.ratio),
                              wait=not body.async_)
    if body.async_:  # answers the records as accepted (PENDING) and the balances after the reservation
        return JSONResponse(translate.response(job.extra["accepted"], job.admitted.balances, owner))
    await cancel_on_disconnect(client_gone(request), studio.run_job(job.id, resumable=False))
    return await _answer(studio, job.admitted.image_ids, owner)


@router.post("/api/images/upload", response_model=UploadResponse)  # not in Studio spec
async def upload(request: Request, key: Key, studio: Studio, file: UploadFile = File(...)) -> JSONResponse:
    """Store a reference image; answers its path for ``image``."""
    raw = await file.read()
    path = await asyncio.to_thread(studio.upload, owner_of(key), raw)
    return JSONResponse({"path": path})


@router.get("/api/images", response_model=ImagesResponse)  # not in Studio spec
async def list_group(key: Key, studio: Studio, groupId: Annotated[str, Query(min_length=1, max_length=200)],
                     base64: bool = True) -> JSONResponse:
    """The caller's images of one groupId, oldest first."""
    owner = owner_of(key)
    ids = await asyncio.to_thread(studio.group, owner, groupId)
    return await _answer(studio, ids, owner, with_data=base64)


@router.get("/api/images/{imageId}", response_model=ImagesResponse)  # not in Studio spec
async def get_image(imageId: RecordId, key: Key, studio: Studio) -> JSONResponse:
    """One image record as it progresses (PENDING, IN_PROGRESS, COMPLETED, FAILED)."""
    owner = owner_of(key)
    await asyncio.to_thread(studio.owned_image, owner, imageId)
    return await _answer(studio, [imageId], owner)


@router.post("/api/images/{imageId}/upscale", response_model=ImagesResponse)  # not in Studio spec
async def upscale(imageId: RecordId, body: UpscaleRequest, request: Request, key: Key, studio: Studio) -> JSONResponse:
    """Creates an Upscaled record of the image (scaleSize 1x, 2x, 4x, 8x); charged by factor."""
    owner = owner_of(key)
    job = await studio.upscale(owner, key.id if key else None, imageId, body.scaleSize)
    await cancel_on_disconnect(client_gone(request), studio.run_job(job.id, resumable=False))
    return await _answer(studio, job.admitted.image_ids, owner)


@router.post("/api/images/{imageId}/bookmark", response_model=ImagesResponse)  # not in Studio spec
async def add_bookmark(imageId: RecordId, key: Key, studio: Studio) -> JSONResponse:
    owner = owner_of(key)
    await asyncio.to_thread(studio.bookmark, owner, imageId, True)
    return await _answer(studio, [imageId], owner, with_data=False)


@router.delete("/api/images/{imageId}/bookmark", response_model=ImagesResponse)  # not in Studio spec
async def remove_bookmark(imageId: RecordId, key: Key, studio: Studio) -> JSONResponse:
    owner = owner_of(key)
    await asyncio.to_thread(studio.bookmark, owner, imageId, False)
    return await _answer(studio, [imageId], owner, with_data=False)


@router.get("/api/credits", response_model=Credits)  # not in Studio spec
async def credits(key: Key, studio: Studio) -> JSONResponse:
    """The caller's three balances."""
    balances = await asyncio.to_thread(studio.balances, owner_of(key))
    return JSONResponse(balances.to_wire())


#: How a client points at this dialect ({base}: the server's URL, {key}: an API key), shown at start.
CLIENT_HINT = "Studio  POST {base}/api/images/create           X-Api-Key: {key}"


def mount(app: FastAPI, models: ModelsConfig) -> None:
    """Studio's routes (its model is settings.studio_model: no table of its own in the models TOML)."""
    app.state.client_hints.append(CLIENT_HINT)
    app.include_router(router)
    app.include_router(library.router)
