"""A1111 routes: everything but generation (progress, options, models, samplers, png-info ...).

Lists answer what this server really has for the caller: its own and the public LoRAs and
embeddings of the asset library, its Studio styles as prompt styles, the configured sd/sdxl models
as checkpoints. What A1111 has and pixelserve does not is a 501 in A1111's error body
(``NOT_SUPPORTED`` below, with the reason), never an empty success that pretends.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from pixelserve.dialects.a1111 import extras, hires, progress, samplers, translate
from pixelserve.dialects.a1111.checkpoints import Checkpoints
from pixelserve.dialects.a1111.options import A1111Defaults
from pixelserve.dialects.a1111.route import A1111Route, Key
from pixelserve.errors import NotFound, NotSupported
from pixelserve.http.deps import Assets, Service, SettingsDep
from pixelserve.service.asset_refs import PUBLIC, AssetFilter, scope_of
from pixelserve.service.auth import Caller
from pixelserve.service.job_status import JobQueries

router = APIRouter(route_class=A1111Route, tags=["AUTOMATIC1111"])
P = "/sdapi/v1"
#: LoRAs / embeddings listed at most (the asset library pages; A1111 lists every file it found).
MAX_LISTED = 1000

#: A1111 endpoints pixelserve does not serve, and why (each a 501 naming itself).
NOT_SUPPORTED = {
    ("POST", "/interrogate"): "image captioning (CLIP / DeepBooru interrogation) is not built",
    ("POST", "/unload-checkpoint"): "models are shared by every key's jobs; none is unloaded on one client's request",
    ("POST", "/reload-checkpoint"): "models are shared by every key's jobs and loaded at start",
    ("POST", "/create/embedding"): "training is not offered",
    ("POST", "/create/hypernetwork"): "training is not offered",
    ("POST", "/train/embedding"): "training is not offered",
    ("POST", "/train/hypernetwork"): "training is not offered",
    ("POST", "/preprocess"): "training is not offered",
}


def _jobs(request: Request) -> JobQueries:
    return request.app.state.jobs


def _defaults(request: Request) -> A1111Defaults:
    return request.app.state.a1111_defaults


def _id(key: Caller | None) -> int | None:
    return key.id if key is not None else None


# -- the caller's jobs -------------------------------------------------------------------------
@router.get(f"{P}/progress")
async def get_progress(request: Request, key: Key, skip_current_image: bool = False,
                       id_task: Annotated[str | None, Query(max_length=64)] = None,  # not in A1111's /progress
                       force_task_id: Annotated[str | None, Query(max_length=64)] = None,  # not in A1111's /progress
                       ) -> dict:
    """The caller's own job: the one named by ``id_task``/``force_task_id``, else its newest running one."""
    return await progress.progress(_jobs(request), _id(key), id_task or force_task_id, skip_current_image)


class InternalProgressRequest(BaseModel):
    id_task: str = Field(max_length=64)
    id_live_preview: int = -1
    live_preview: bool = True


@router.post("/internal/progress")
async def internal_progress(request: Request, key: Key, body: InternalProgressRequest) -> dict:
    """A1111's UI per-task progress (``force_task_id``): the caller's job only."""
    return await progress.internal_progress(_jobs(request), _id(key), body.id_task, body.id_live_preview,
                                            body.live_preview)


@router.post(f"{P}/interrupt")
async def interrupt(request: Request, key: Key) -> dict:
    """Stops the caller's running jobs (nobody else's)."""
    progress.interrupt(_jobs(request), _id(key))
    return {}


@router.post(f"{P}/skip")
async def skip(request: Request, key: Key) -> None:
    """Ends the caller's running one-image job; 501 for a batch (no per-image skip)."""
    progress.skip(_jobs(request), _id(key))


# -- models, samplers, networks ----------------------------------------------------------------
@router.get(f"{P}/sd-models")
async def sd_models(key: Key, checkpoints: Checkpoints) -> list[dict]:
    return [c.wire() for c in await asyncio.to_thread(checkpoints.list)]


@router.post(f"{P}/refresh-checkpoints")
async def refresh_checkpoints(key: Key, checkpoints: Checkpoints) -> None:
    """The models come from the configuration; a changed weights file is hashed again here."""
    await asyncio.to_thread(checkpoints.list)


@router.get(f"{P}/samplers")
async def get_samplers(key: Key) -> list[dict]:
    return samplers.samplers_wire()


@router.get(f"{P}/schedulers")
async def get_schedulers(key: Key) -> list[dict]:
    return samplers.schedulers_wire()


@router.get(f"{P}/upscalers")
async def upscalers(key: Key) -> list[dict]:
    return [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
            for name in extras.UPSCALERS]


@router.get(f"{P}/latent-upscale-modes")
async def latent_upscale_modes(key: Key) -> list[dict]:
    return [{"name": name} for name in LATENT_UPSCALE_MODES]


#: hr_upscaler names of the latent kind (hires.py builds them; /upscalers has the pixel ones).
LATENT_UPSCALE_MODES = tuple(hires.LATENT_UPSCALERS)


def _assets(assets, key: Caller | None, kind: str) -> list:
    rows, _ = assets.listing(AssetFilter(scopes=(scope_of(key), PUBLIC), kinds=(kind,), limit=MAX_LISTED))
    return [r for r in rows if r.status == "ready"]


@router.get(f"{P}/loras")
async def loras(key: Key, assets: Assets) -> list[dict]:
    """The caller's and the public LoRAs of the asset library; ``<lora:NAME:W>`` takes ``name``."""
    rows = await asyncio.to_thread(_assets, assets, key, "lora")
    return [{"name": r.name, "alias": r.name, "path": f"{r.name}.safetensors",
             "metadata": {**(r.meta or {}), "family": r.family, "public": r.scope == PUBLIC}} for r in rows]


@router.post(f"{P}/refresh-loras")
async def refresh_loras(key: Key) -> None:
    """LoRAs are read from the asset library on every request: nothing to rescan."""


@router.get(f"{P}/embeddings")
async def embeddings(key: Key, assets: Assets) -> dict:
    """The caller's and the public textual-inversion embeddings. ``shape`` and ``vectors`` are null: the
    library does not read them from the file (A1111 knows them from loading every embedding at start)."""
    rows = await asyncio.to_thread(_assets, assets, key, "textual_inversion")
    loaded = {r.name: {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                       "vectors": None} for r in rows}
    return {"loaded": loaded, "skipped": {}}


@router.post(f"{P}/refresh-embeddings")
async def refresh_embeddings(key: Key) -> None:
    """Embeddings are read from the asset library on every request: nothing to rescan."""


@router.get(f"{P}/sd-vae")
async def sd_vae(key: Key) -> list[dict]:
    """No separate VAE is selectable: each checkpoint runs with its own (sd_vae "Automatic")."""
    return []


@router.post(f"{P}/refresh-vae")
async def refresh_vae(key: Key) -> None:
    pass


@router.get(f"{P}/hypernetworks")
async def hypernetworks(key: Key) -> list[dict]:
    return []  # pixelserve loads no hypernetworks


@router.get(f"{P}/face-restorers")
async def face_restorers(key: Key) -> list[dict]:
    """``restore_faces`` runs pixelserve's face refiner (GFPGAN / CodeFormer are not served)."""
    return [{"name": translate.FACE_RESTORER, "cmd_dir": None}]


@router.get(f"{P}/realesrgan-models")
async def realesrgan_models(key: Key) -> list[dict]:
    return []  # model upscalers are not served (extras.py)


@router.get(f"{P}/prompt-styles")
async def prompt_styles(request: Request, key: Key) -> list[dict]:
    """The caller's Studio styles and the built-in ones (``{prompt}`` marks the prompt, as in A1111)."""
    owner = key.id if key is not None else 0  # Studio's owner with auth off
    rows = await asyncio.to_thread(request.app.state.studio.styles, owner)
    return [{"name": s.name, "prompt": s.prompt_template, "negative_prompt": s.negative_prompt or ""} for s in rows]


@router.get(f"{P}/scripts")
async def scripts(key: Key) -> dict:
    """No A1111 scripts: webuiapi then adds no ControlNet / ADetailer entries to its requests."""
    return {"txt2img": [], "img2img": []}


@router.get(f"{P}/script-info")
async def script_info(key: Key) -> list[dict]:
    return []


@router.get(f"{P}/extensions")
async def extensions(key: Key) -> list[dict]:
    return []


# -- server ------------------------------------------------------------------------------------
def _ram() -> dict:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:]}
        total, free = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    except (OSError, KeyError, ValueError, IndexError):
        return {"error": "unavailable"}
    return {"free": free, "used": total - free, "total": total}


def _cuda(engine: Any) -> dict:
    reader = getattr(engine, "device_memory", None)
    readings = reader() if reader is not None else {}
    cuda = [m for d, m in readings.items() if d.startswith("cuda")]
    if not cuda:
        return {"error": "no CUDA device"}
    used, total = cuda[0]["used"], cuda[0]["total"]
    return {"system": {"free": total - used, "used": used, "total": total}}


@router.get(f"{P}/memory")
async def memory(key: Key, service: Service) -> dict:
    """The machine's RAM and the first CUDA device as the driver sees it (A1111's ``system`` part)."""
    return {"ram": await asyncio.to_thread(_ram), "cuda": await asyncio.to_thread(_cuda, service.engine)}


@router.get(f"{P}/cmd-flags")
async def cmd_flags(key: Key, settings: SettingsDep) -> dict:
    """A1111's launch flags that describe this server (pixelserve has its own settings, PIXELSERVE_*)."""
    return {"api": True, "nowebui": True, "api_auth": None, "api_log": False, "listen": True,
            "port": None, "skip_torch_cuda_test": False, "lowvram": False, "medvram": False,
            "api_server_stop": False, "disable_safe_unpickle": False, "cors_allow_origins": None,
            "data_dir": None, "ckpt_dir": None, "lora_dir": None, "embeddings_dir": None,
            "no_half": False, "device_id": None, "preview_every": settings.preview_every}  # not in A1111


@router.get(f"{P}/options")
async def get_options(request: Request, key: Key, settings: SettingsDep) -> dict:
    """The caller's own options: ``sd_model_checkpoint`` is its default checkpoint, not the server's."""
    return await asyncio.to_thread(_defaults(request).wire, key, settings.preview_every)


@router.post(f"{P}/options")
async def set_options(request: Request, key: Key, settings: SettingsDep,
                      body: Annotated[dict[str, Any], Body()]) -> None:
    """Sets the caller's options; another key's jobs never see them."""
    await asyncio.to_thread(_defaults(request).update, key, body, settings.preview_every)


# -- images ------------------------------------------------------------------------------------
@router.post(f"{P}/png-info")
async def png_info(key: Key, settings: SettingsDep, body: extras.PNGInfoRequest) -> dict:
    return await asyncio.to_thread(extras.png_info, body, settings.max_image_pixels)


@router.post(f"{P}/extra-single-image")
async def extra_single_image(key: Key, settings: SettingsDep, body: extras.ExtrasSingleImageRequest) -> dict:
    return await asyncio.to_thread(extras.single_image, body, settings.max_image_pixels)


@router.post(f"{P}/extra-batch-images")
async def extra_batch_images(key: Key, settings: SettingsDep, body: extras.ExtrasBatchImagesRequest) -> dict:
    return await asyncio.to_thread(extras.batch_images, body, settings.max_image_pixels)


def _not_supported(path: str, reason: str):
    async def refuse(key: Key) -> None:
        raise NotSupported(f"{P}{path} is not supported by pixelserve: {reason}")

    refuse.__name__ = "not_supported_" + path.strip("/").replace("/", "_").replace("-", "_")
    return refuse


for (_method, _path), _reason in NOT_SUPPORTED.items():
    router.add_api_route(f"{P}{_path}", _not_supported(_path, _reason), methods=[_method],
                         include_in_schema=False, status_code=501)


@router.api_route(P + "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown(path: str) -> None:
    """Any other /sdapi/v1 path: A1111's error body, as its exception middleware renders FastAPI's 404."""
    raise NotFound(f"{P}/{path} is not an endpoint of this server (A1111 dialect)")
