"""OctoAI wire <-> internal request/result, and asset records. Pure functions, covered by golden-JSON tests.

``request_from_wire`` needs the assets the request names already resolved (``asset_refs`` lists
them; the router resolves them through the asset service) and the engine's model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timezone
from typing import Mapping

from PIL import Image

from pixelserve.core.images import INPUT_FORMATS, decode_base64_image
from pixelserve.core.request import (ControlNetRef, GenerationRequest, ImagePromptRef, LoraRef, PostProcess,
                                     TextualInversionRef)
from pixelserve.dialects.octoai.protocol import (ASSET_ENGINES, DEFAULT_SIZE, ENGINE_FAMILIES, MAX_SEED, SAMPLERS,
                                                SIZES, CreateAssetRequest, ImageGenerationRequest)
from pixelserve.dialects.octoai.styles import apply_style, style_template
from pixelserve.errors import InvalidRequest, NotFound, NotSupported
from pixelserve.service.asset_refs import ASSET_NAME, PUBLIC, AssetFilter, ResolvedAsset
from pixelserve.service.pipeline import OutputOptions, ServiceResult

#: Each input image (base64-decoded) at most this many bytes; the body limit bounds them together.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
JPEG_QUALITY = 90  # our choice: OctoAI does not document its JPEG quality
#: Fields that only an SDXL engine has (a second text encoder, the refiner).
SDXL_ONLY = ("prompt_2", "negative_prompt_2", "use_refiner", "high_noise_frac")
#: Asset fields -> the asset kind (service/assets.py) each must name.
ASSET_FIELDS = {"checkpoint": "checkpoint", "vae": "vae", "loras": "lora",
                "textual_inversions": "textual_inversion", "controlnet": "controlnet"}


@dataclass(frozen=True)
class EngineTarget:
    engine_id: str  # sdxl | sd | controlnet-sdxl | controlnet-sd15
    model_id: str  # the configured model serving it
    family: str  # sd | sdxl


def asset_refs(body: ImageGenerationRequest) -> list[tuple[str, str]]:
    """(field, wire name) of every asset the request names, in field order."""
    refs = [(f, getattr(body, f)) for f in ("checkpoint", "vae", "controlnet") if getattr(body, f) is not None]
    refs += [("loras", name) for name in body.loras or {}]
    refs += [("textual_inversions", name) for name in body.textual_inversions or {}]
    return refs


def asset_lookup(field: str, wire: str) -> dict:
    """How the asset service finds the asset a request field names (``AssetService.resolve``'s keywords)."""
    public, name = asset_name(wire)
    where = field if field in ("checkpoint", "vae", "controlnet") else f"{field}.{wire}"
    return dict(name=name, public=public, kind=ASSET_FIELDS[field], field=where, shown=wire)


def size_of(body: ImageGenerationRequest, engine_id: str,
            extra_sizes: tuple[tuple[int, int], ...] = ()) -> tuple[int, int]:
    """The request's (width, height): one of the engine's sizes (or a configured extra one)."""
    width = body.width if body.width is not None else DEFAULT_SIZE[engine_id]
    height = body.height if body.height is not None else DEFAULT_SIZE[engine_id]
    allowed = SIZES[engine_id] + tuple(extra_sizes)
    if (width, height) not in allowed:
        sizes = ", ".join(f"{w}x{h}" for w, h in SIZES[engine_id])
        raise InvalidRequest(f"{width}x{height} is not a supported resolution for {engine_id}; "
                             f"width x height must be one of {sizes}", field="width" if body.width else "height")
    return width, height


def _seeds(body: ImageGenerationRequest) -> tuple[int | None, ...] | None:
    if body.seed is None:
        return None
    if isinstance(body.seed, int):  # one seed: image i gets seed + i, so every image differs
        return tuple((body.seed + i) % (MAX_SEED + 1) for i in range(body.num_images))
    if len(body.seed) != body.num_images:
        raise InvalidRequest(f"a seed list needs one entry per image ({body.num_images}), got {len(body.seed)}",
                             field="seed")
    return tuple(body.seed)  # null entries are drawn at random by core.validate


def _image(value: str, field: str, max_pixels: int, size: tuple[int, int] | None, mode: str = "RGB") -> Image.Image:
    image = decode_base64_image(value, field=field, max_bytes=MAX_IMAGE_BYTES, max_pixels=max_pixels,
                                formats=INPUT_FORMATS)
    if size is not None and image.size != size:  # "resized to the specified resolution" (the doc)
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image if mode == "keep" else image.convert(mode)


def _repaint_mask(mask: Image.Image) -> Image.Image:
    """White (>= 128) marks the area to paint, as the SDK documents; 255/0 for diffusers."""
    return mask.convert("L").point(lambda v: 255 if v >= 128 else 0)


def _image_task(body: ImageGenerationRequest, size: tuple[int, int], max_pixels: int) -> dict:
    if body.init_image is None:
        for name in ("mask_image", "outpainting"):
            if getattr(body, name):
                raise InvalidRequest("needs init_image (the picture to paint into)", field=name)
        return {"task": "txt2img"}
    init = _image(body.init_image, "init_image", max_pixels, size, mode="keep")
    mask = None
    if body.mask_image is not None:
        mask = _repaint_mask(_image(body.mask_image, "mask_image", max_pixels, size, mode="L"))
    elif body.outpainting and "A" in init.getbands():  # outpainting: the transparent area is new canvas
        mask = init.getchannel("A").point(lambda v: 255 if v < 128 else 0)
    elif body.outpainting:
        raise InvalidRequest("needs mask_image, or an init_image whose transparent area is the canvas to fill",
                             field="outpainting")
    init = init.convert("RGB")
    if mask is None:
        return {"task": "img2img", "init_image": init, "strength": body.strength}
    if mask.getbbox() is None:
        raise InvalidRequest("marks no area to paint (no white pixels)", field="mask_image")
    # The doc's strength is for img2img; inpainting repaints the masked area fully unless it is given.
    strength = body.strength if "strength" in body.model_fields_set else 1.0
    return {"task": "inpaint", "init_image": init, "mask_image": mask, "strength": strength,
            "outpaint": body.outpainting, "inpaint_full_res": body.inpaint_full_res,
            "inpaint_full_res_padding": body.inpaint_full_res_padding}


def _controlnet(body: ImageGenerationRequest, engine: EngineTarget, assets: Mapping[tuple[str, str], ResolvedAsset],
                size: tuple[int, int], max_pixels: int) -> ControlNetRef | None:
    if engine.engine_id.startswith("controlnet-"):
        for name in ("controlnet", "controlnet_image"):
            if getattr(body, name) is None:
                raise InvalidRequest(f"is required by the {engine.engine_id} engine", field=name)
    if body.controlnet is None:
        if body.controlnet_image is not None:
            raise InvalidRequest("needs controlnet (the ControlNet asset to use)", field="controlnet_image")
        return None
    if body.controlnet_image is None:
        raise InvalidRequest("is required with controlnet", field="controlnet_image")
    ref = assets[("controlnet", body.controlnet)]
    return ControlNetRef(
        name=body.controlnet, path=ref.path, image=_image(body.controlnet_image, "controlnet_image", max_pixels, size),
        # Only the public ControlNets come with a preprocessor; a custom one gets the map as sent (the doc).
        preprocess=ref.preprocess if body.controlnet_preprocess else None,
        conditioning_scale=body.controlnet_conditioning_scale, end=body.controlnet_early_stop,
    )


def _textual_inversions(body: ImageGenerationRequest, assets) -> tuple[TextualInversionRef, ...]:
    out = []
    for name, word in (body.textual_inversions or {}).items():
        ref = assets[("textual_inversions", name)]
        token = word or (ref.trigger_words[0] if ref.trigger_words else None)
        if token is None:
            raise InvalidRequest("needs a trigger word (the asset names none)", field=f"textual_inversions.{name}")
        out.append(TextualInversionRef(name=name, path=ref.path, token=token))
    return tuple(out)


def request_from_wire(body: ImageGenerationRequest, engine: EngineTarget,
                      assets: Mapping[tuple[str, str], ResolvedAsset], *, max_pixels: int,
                      extra_sizes: tuple[tuple[int, int], ...] = ()) -> GenerationRequest:
    if engine.family != "sdxl":
        for name in SDXL_ONLY:
            if name in body.model_fields_set and getattr(body, name) not in (None, False):
                raise InvalidRequest(f"applies to SDXL engines only, not {engine.engine_id}", field=name)
    size = size_of(body, engine.engine_id, extra_sizes)
    prompt, negative = apply_style(body.style_preset, body.prompt, body.negative_prompt)
    prompt_2 = apply_style(body.style_preset, body.prompt_2, None)[0] if body.prompt_2 else None
    model, checkpoint = engine.model_id, None
    if body.checkpoint is not None:
        ref = assets[("checkpoint", body.checkpoint)]
        model, checkpoint = (ref.model_id, None) if ref.model_id else (engine.model_id, ref.path)
    image_prompt = None
    for trigger, images in (body.transfer_images or {}).items():
        image_prompt = ImagePromptRef(trigger=trigger, images=tuple(
            _image(v, f"transfer_images.{trigger}.{i}", max_pixels, None) for i, v in enumerate(images)))
    return GenerationRequest(
        model=model, prompt=prompt, negative_prompt=negative, width=size[0], height=size[1],
        num_images=body.num_images, seeds=_seeds(body), steps=body.steps, guidance_scale=body.cfg_scale,
        scheduler=SAMPLERS[body.sampler], post=PostProcess(nsfw_check=True),
        prompt_2=prompt_2, negative_prompt_2=body.negative_prompt_2, prompt_weighting=True,
        clip_skip=body.clip_skip or None,
        use_refiner=body.use_refiner if engine.family == "sdxl" else None,
        high_noise_frac=body.high_noise_frac if engine.family == "sdxl" else None,
        checkpoint=checkpoint,
        vae=assets[("vae", body.vae)].path if body.vae is not None else None,
        loras=tuple(LoraRef(name=name, path=assets[("loras", name)].path, weight=1.0 if w is None else w)
                    for name, w in (body.loras or {}).items()),
        textual_inversions=_textual_inversions(body, assets),
        controlnet=_controlnet(body, engine, assets, size, max_pixels),
        image_prompt=image_prompt,
        style=style_template(body.style_preset),
        **_image_task(body, size, max_pixels),
    )


def output_options(body: ImageGenerationRequest) -> OutputOptions:
    return OutputOptions(format=body.image_encoding, quality=JPEG_QUALITY if body.image_encoding == "jpeg" else None)


def result_to_wire(result: ServiceResult, prediction_time_ms: float, nsfw_threshold: float = 0.5) -> dict:
    """Images at or over the NSFW threshold are removed: ``image_b64`` null, ``removed_for_safety`` true."""
    images = []
    for im in result.images:
        removed = im.nsfw_score is not None and im.nsfw_score >= nsfw_threshold
        images.append({
            "image_b64": None if removed else base64.b64encode(im.data).decode("ascii"),
            "seed": im.seed,
            "removed_for_safety": removed,
            "safety_score": im.nsfw_score,
        })
    return {"images": images, "prediction_time_ms": round(prediction_time_ms, 3)}


# -- asset library ---------------------------------------------------------------------------------
PUBLIC_PREFIX = "octoai:"
PUBLIC_TENANT = "octoai"  # the owner of public assets in tenant_uuid and owner/name references
#: (kind, family) -> the engine an asset is listed under when its creator named none (configured assets)
_ENGINE_OF = {("controlnet", "sd"): "image/controlnet-sd15", ("controlnet", "sdxl"): "image/controlnet-sdxl",
              "sd": "image/stable-diffusion-v1-5", "sdxl": "image/stable-diffusion-xl-v1-0"}


def asset_from_wire(body: CreateAssetRequest) -> dict:
    """kind, family, description and meta (our copy of ``data``) for the asset service."""
    if body.asset_type in ("file", "latent"):
        raise NotSupported(f"{body.asset_type} assets are not used by image generation here", field="asset_type")
    if body.url is not None or body.hf_repo is not None:
        raise NotSupported("assets are uploaded to put_url; fetching them from a URL or a Hugging Face "
                           "repository is not supported", field="url" if body.url is not None else "hf_repo")
    if body.transfer_api_type in ("sts", "gcp-oauth"):
        raise NotSupported("only the presigned-url transfer API is served", field="transfer_api_type")
    engine = body.data.engine
    if engine not in ASSET_ENGINES:
        raise InvalidRequest(f"must be one of {', '.join(ASSET_ENGINES)}", field="data.engine")
    controlnet_engine = ASSET_ENGINES[engine].startswith("controlnet-")
    kind = "controlnet" if body.asset_type == "checkpoint" and controlnet_engine else body.asset_type
    family = ENGINE_FAMILIES[ASSET_ENGINES[engine]]
    meta = {"engine": engine, "file_format": body.data.file_format, "data_type": body.data.data_type,
            "trigger_words": body.data.trigger_words, "checkpoint": body.data.checkpoint}
    return {"kind": kind, "family": family, "description": body.description or "",
            "meta": {k: v for k, v in meta.items() if v is not None}}


def asset_to_wire(row) -> dict:
    """An AssetRecord (db/models_assets.py) as OctoAI's Asset."""
    meta = row.meta or {}
    asset_type = "checkpoint" if row.kind == "controlnet" else row.kind
    data = {"asset_type": asset_type,
            "engine": meta.get("engine") or _ENGINE_OF.get((row.kind, row.family)) or _ENGINE_OF[row.family],
            "file_format": meta.get("file_format", "safetensors")}
    for key in ("data_type", "checkpoint"):
        if meta.get(key) is not None:
            data[key] = meta[key]
    if row.kind in ("lora", "textual_inversion"):
        data["trigger_words"] = list(meta.get("trigger_words") or [])
    public = row.scope == PUBLIC
    return {
        "id": row.id, "name": row.name, "description": row.description or "", "asset_type": asset_type,
        "data": data, "size_bytes": row.size_bytes, "status": row.status, "status_details": row.status_details or "",
        "created_at": row.created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "is_public": public, "tenant_uuid": PUBLIC_TENANT if public else row.scope,
        "file_structure": "single_file" if row.origin == "upload" else "unknown",
    }


def asset_name(wire: str) -> tuple[bool, str]:
    """(public, bare name) of a name as a request writes it: ``octoai:<name>`` or a private ``<name>``."""
    return (True, wire[len(PUBLIC_PREFIX):]) if wire.startswith(PUBLIC_PREFIX) else (False, wire)


#: asset_type (a listing's filter) -> the asset kinds it lists ("-": none; file and latent assets are not served)
KIND_OF_TYPE = {"checkpoint": ("checkpoint", "controlnet"), "lora": ("lora",), "vae": ("vae",),
                "textual_inversion": ("textual_inversion",), "file": ("-",), "latent": ("-",)}


def asset_filter(scope: str, *, name: str | None, is_public: bool | None, asset_type, engine, engine_type: str | None,
                 limit: int, offset: int, asset_ids: str | None, owner: str | None, file_format) -> AssetFilter:
    """``GET /v1/assets``'s query as the asset service's filter; ``scope``: the caller's own."""
    scopes = {scope, PUBLIC}
    if name is not None and name.startswith(PUBLIC_PREFIX):
        name, is_public = name[len(PUBLIC_PREFIX):], True
    if is_public is not None:
        scopes &= {PUBLIC} if is_public else {scope}
    if owner is not None:
        scopes &= {PUBLIC} if owner == PUBLIC_TENANT else {owner}
    kinds = tuple(k for t in asset_type or () for k in KIND_OF_TYPE[t])
    families = tuple(ENGINE_FAMILIES[ASSET_ENGINES[e]] for e in engine or ())
    # Only safetensors files are ever stored, and every asset is an image one.
    impossible = engine_type not in (None, "image") or any(f != "safetensors" for f in file_format or ())
    return AssetFilter(scopes=tuple(sorted(scopes)) if not impossible else (), name=name, kinds=kinds,
                       families=families, ids=tuple(i for i in (asset_ids or "").split(",") if i), limit=limit,
                       offset=offset)


def asset_page_to_wire(rows: list, total: int, offset: int, data_type: str | None) -> dict:
    """One page of a listing; ``data_type`` lives in the asset's own description, not a column."""
    if data_type is not None:
        rows = [r for r in rows if (r.meta or {}).get("data_type") == data_type]
    return {"data": [asset_to_wire(r) for r in rows], "has_more": offset + len(rows) < total, "total": total}


def asset_owner_and_name(ref: str, scope: str) -> tuple[str, str]:
    """(owner scope, bare name) of ``<owner>/<name>``, ``octoai:<name>`` or the caller's own ``<name>``."""
    owner, _, name = ref.rpartition("/") if "/" in ref else ("", "", ref)
    public, name = asset_name(name)
    owner = PUBLIC if public or owner == PUBLIC_TENANT else (owner or scope)
    if not ASSET_NAME.fullmatch(name):
        raise NotFound("no such asset")
    return owner, name
