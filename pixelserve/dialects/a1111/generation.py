"""A1111 routes: POST /sdapi/v1/txt2img and /sdapi/v1/img2img: parse, pick the model, translate, call
the service, translate back.

The model: ``override_settings.sd_model_checkpoint`` when sent, else the caller's own default
(``/options``, stored per key: ``app.state.a1111_defaults.model_for(caller)`` where endpoints has
set it up), else the first configured checkpoint. ``force_task_id`` becomes the job's client id
(the jobs API and ``/progress`` find the job by it).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from fastapi import APIRouter, Request

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.a1111 import answer, options, translate
from pixelserve.dialects.a1111.checkpoints import CheckpointTable, Checkpoints
from pixelserve.dialects.a1111.protocol import GenerationResponse, Img2ImgRequest, Processing, Txt2ImgRequest
from pixelserve.dialects.a1111.route import A1111Route, Key
from pixelserve.errors import InvalidRequest, NotFound
from pixelserve.http.deps import Assets, Service
from pixelserve.http.route import client_gone
from pixelserve.service import job_options
from pixelserve.service.asset_refs import PUBLIC, AssetFilter, scope_of
from pixelserve.service.assets import AssetService
from pixelserve.service.auth import Caller
from pixelserve.service.pipeline import Pipeline, cancel_on_disconnect

router = APIRouter(route_class=A1111Route, tags=["AUTOMATIC1111"])


def _target(request: Request, service: Pipeline, checkpoints: CheckpointTable, key: Caller | None,
            body: Processing) -> tuple[translate.Target, dict]:
    """(the model, the options the job runs with). Runs in a thread: naming a checkpoint may hash its
    file once, and the caller's options come from the database."""
    defaults = getattr(request.app.state, "a1111_defaults", None)
    fixed = options.fixed_options(request.app.state.settings.preview_every)
    settings = translate.settings_of(body, defaults.options_for(key) if defaults is not None else None, fixed)
    wanted = translate.model_name(body)
    if wanted is not None:
        model_id = checkpoints.resolve(wanted, field="override_settings.sd_model_checkpoint")
    else:
        model_id = defaults.model_for(key) if defaults is not None else None
        if model_id is None:
            listed = checkpoints.list()
            if not listed:
                raise NotFound("no sd or sdxl model is configured on this server", field="sd_model_checkpoint")
            model_id = listed[0].model_id
    info = service.model_info(model_id)
    checkpoint = checkpoints.get(model_id)
    spec = request.app.state.settings.models.models.get(model_id)
    refiner = spec.refiner.name if spec is not None and spec.refiner is not None else None  # a name, never a path
    return translate.Target(model_id=model_id, family=info.family, title=checkpoint.title, hash=checkpoint.hash,
                            tasks=tuple(info.tasks), refiner=refiner), settings


def _lora_paths(assets: AssetService, key: Caller | None, family: str) -> Callable[[str], str]:
    """A LoRA named in ``<lora:NAME:W>``: the caller's asset of that name, else the public one."""
    def path(name: str) -> str:
        shown = f"<lora:{name}>"
        try:
            return assets.resolve(scope_of(key), name=name, public=False, kind="lora", family=family,
                                  field="prompt", shown=shown).path
        except NotFound:
            pass
        try:
            return assets.resolve("", name=name, public=True, kind="lora", family=family, field="prompt",
                                  shown=shown).path
        except NotFound:
            raise NotFound(f"no LoRA named {name!r} in your asset library or the public one "
                           "(see /sdapi/v1/loras)", field="prompt") from None
    return path


def _styles(request: Request, key: Caller | None, body: Processing) -> translate.Styles:
    """The caller's Studio styles (and the built-in ones) by name, when the request names any: A1111's
    prompt styles (/prompt-styles lists them). Only their prompt and negative prompt apply."""
    studio = getattr(request.app.state, "studio", None)
    if not body.styles or studio is None:
        return {}
    owner = key.id if key is not None else 0  # Studio's owner with auth off
    return {s.name: (s.prompt_template or "", s.negative_prompt or "") for s in studio.styles(owner)}


def _embeddings(assets: AssetService, key: Caller | None, family: str, body: Processing) -> translate.Embeddings:
    """Textual inversions named in the prompts (A1111: an embedding's name is its word in the prompt): the
    caller's and the public ones of the model's family (/embeddings lists them), name -> file."""
    text = f"{body.prompt}\n{body.negative_prompt}"
    rows, _ = assets.listing(AssetFilter(scopes=(scope_of(key), PUBLIC), kinds=("textual_inversion",),
                                         families=(family,), limit=500))
    used = {r.name: r.scope == PUBLIC for r in rows if r.status == "ready" and translate.names_word(text, r.name)}
    return {name: assets.resolve(scope_of(key), name=name, public=public, kind="textual_inversion", family=family,
                                 field="prompt", shown=name).path for name, public in sorted(used.items())}


def _task_id(body: Processing) -> None:
    """``force_task_id`` is the job's client id (it wins over an X-Job-Id header)."""
    if body.force_task_id is None:
        return
    if not job_options.CLIENT_JOB_ID.fullmatch(body.force_task_id):
        raise InvalidRequest("must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -", field="force_task_id")
    options = job_options.current()
    if options is not None:
        options.client_id = body.force_task_id


async def _generate(request: Request, body: Processing, key: Key, service: Service, assets: Assets,
                    checkpoints: Checkpoints, build: Callable) -> JSONResponse:
    body = translate.with_infotext(body)
    _task_id(body)
    target, settings = await asyncio.to_thread(_target, request, service, checkpoints, key, body)
    styles = await asyncio.to_thread(_styles, request, key, body)
    embeddings = await asyncio.to_thread(_embeddings, assets, key, target.family, body)
    plan = await asyncio.to_thread(build, body, target, _lora_paths(assets, key, target.family), settings, styles,
                                   embeddings)
    result = await cancel_on_disconnect(client_gone(request), service.generate(
        plan.request, dialect="a1111", key=key, output=plan.output, record=plan.record))
    wire = await asyncio.to_thread(answer.result_to_wire, plan, target, result)
    return JSONResponse(wire)  # the route answers X-Job-Id (the client id, else the job id)


@router.post("/sdapi/v1/txt2img", response_model=GenerationResponse)
async def txt2img(body: Txt2ImgRequest, request: Request, key: Key, service: Service, assets: Assets,
                  checkpoints: Checkpoints) -> JSONResponse:
    """Text to image (A1111 ``text2imgapi``)."""
    return await _generate(request, body, key, service, assets, checkpoints, translate.txt2img_to_request)


@router.post("/sdapi/v1/img2img", response_model=GenerationResponse)
async def img2img(body: Img2ImgRequest, request: Request, key: Key, service: Service, assets: Assets,
                  checkpoints: Checkpoints) -> JSONResponse:
    """Image to image and inpainting (A1111 ``img2imgapi``)."""
    def build(b, target, loras, settings, styles, embeddings):
        return translate.img2img_to_request(b, target, loras, service.limits.max_pixels, settings, styles, embeddings)
    return await _generate(request, body, key, service, assets, checkpoints, build)
