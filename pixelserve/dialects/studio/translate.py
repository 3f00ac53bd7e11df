"""Studio wire <-> internal request/records. Pure functions, covered by golden-JSON tests.

Prompt fields (the spec names them, it does not say how they combine; decided here):

- ``main``: the text that is drawn: ``enhancedPrompt`` when present and free of Hangul (the
  platform's English "text2prompt" result), else ``prompt``, translated to English first when it
  is Korean and a translation model is configured (engine/text/prompt_translation.py). Without one a Korean
  prompt goes to the text encoder unchanged, and ``promptSource`` says so.
- ``super``: what the text encoder gets: ``main`` inside the style's template (``main`` alone
  without a style).
- ``originalPrompt``: ``initialPrompt`` (the user's words before text2prompt) or ``prompt``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixelserve.core.images import fit
from pixelserve.core.request import GenerationRequest, ImagePromptRef, LoraRef
from pixelserve.dialects.studio.protocol import PLATFORMS, RATIO_ALIASES, RESOLUTIONS, CreateRequest
from pixelserve.errors import InvalidRequest, NotSupported
from pixelserve.service.studio import ImageView, RecordInfo

HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


@dataclass(frozen=True)
class StyleSpec:
    name: str
    prompt_template: str = "{prompt}"
    negative_prompt: str | None = None
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    lora: dict | None = None  # {"name", "weight"}


@dataclass(frozen=True)
class Defaults:
    """Server settings the translation needs (settings.studio_*)."""

    steps: int = 30
    guidance_scale: float = 7.0
    reference_strength: float = 0.75
    reference_scale: float = 0.6  # IP-Adapter scale of a reference image, on a model that has one
    resolutions: dict | None = None  # per-family overrides of RESOLUTIONS


def ratio_of(wire: str) -> str:
    """The numeric ratio ("3:4") of a wire ratio, named ones ("vertical") included."""
    return RATIO_ALIASES.get(wire, wire)


def resolution(family: str, ratio: str, overrides: dict | None = None) -> tuple[int, int]:
    ratio = ratio_of(ratio)
    table = {**RESOLUTIONS.get(family, {}), **((overrides or {}).get(family) or {})}
    if ratio not in table:
        raise NotSupported(f"no resolution for ratio {ratio} with the {family} family", field="ratio")
    w, _, h = table[ratio].partition("x")
    return int(w), int(h)


def _english_enhanced(body: CreateRequest) -> bool:
    return bool(body.enhancedPrompt and body.enhancedPrompt.strip() and not HANGUL.search(body.enhancedPrompt))


def needs_translation(body: CreateRequest) -> bool:
    """A Korean prompt without an English enhancedPrompt to draw instead."""
    return not _english_enhanced(body) and bool(HANGUL.search(body.prompt))


def drawn_prompt(body: CreateRequest, translated: str | None = None) -> tuple[str, str]:
    """(main, where it came from); ``translated``: the translation model's English for ``prompt``."""
    if _english_enhanced(body):
        return body.enhancedPrompt, "enhancedPrompt"
    if needs_translation(body):
        if translated:
            return translated, "prompt (translated)"
        return body.prompt, "prompt (untranslated: no translation model configured)"
    return body.prompt, "prompt"


def prompt_record(body: CreateRequest, style: StyleSpec | None, translated: str | None = None) -> dict:
    main, source = drawn_prompt(body, translated)
    return {
        "originalPrompt": body.initialPrompt or body.prompt,
        "super": style.prompt_template.replace("{prompt}", main) if style else main,
        "main": main,
        "promptSource": source,
        "style": style.name if style else None,
        "prompt": body.prompt, "randomPrompt": body.randomPrompt, "initialPrompt": body.initialPrompt,
        "enhancedPrompt": body.enhancedPrompt, "captionPrompt": body.captionPrompt,
        "captionTPrompt": body.captionTPrompt,
    }


def create_to_request(body: CreateRequest, *, model_id: str, family: str, defaults: Defaults,
                      style: StyleSpec | None = None, reference: Image.Image | None = None,
                      translated: str | None = None, style_lora: LoraRef | None = None,
                      image_prompt: bool = False) -> GenerationRequest:
    """``style_lora``: the style's LoRA (``style.lora``) resolved to its asset file by the router.
    ``image_prompt``: the model has an IP-Adapter, so a reference image guides it as an image prompt
    (else the reference is the start of an img2img at ``reference_strength``)."""
    if style is not None and style.lora and style_lora is None:
        raise NotSupported(f"style {style.name!r} uses the LoRA {style.lora['name']!r}, which was not resolved",
                           field=style_field(body))
    width, height = resolution(family, body.ratio, defaults.resolutions)
    prompts = prompt_record(body, style, translated)
    common = dict(
        model=model_id, prompt=prompts["super"], negative_prompt=(style.negative_prompt if style else None) or None,
        width=width, height=height, num_images=body.sample,
        steps=(style.steps if style and style.steps else defaults.steps),
        guidance_scale=(style.cfg_scale if style and style.cfg_scale is not None else defaults.guidance_scale),
        scheduler=style.sampler if style else None,
        loras=(style_lora,) if style_lora is not None else (),
    )
    if reference is None:
        return GenerationRequest(task="txt2img", **common)
    if family == "unclip":
        raise NotSupported("reference images need an sd or sdxl model (img2img)", field="image")
    if image_prompt:
        return GenerationRequest(task="txt2img", image_prompt=ImagePromptRef(
            images=(fit(reference, width, height),), scale=defaults.reference_scale), **common)
    return GenerationRequest(task="img2img", init_image=fit(reference, width, height),
                             strength=defaults.reference_strength, **common)


def style_field(body: CreateRequest) -> str:
    """The request field a style came from, for errors."""
    return "collectionId" if body.collectionId is not None else "styleId"


def record_info(body: CreateRequest, platform: str, api_type: str | None, style: StyleSpec | None,
                translated: str | None = None) -> RecordInfo:
    return RecordInfo(platform=platform, api_type=api_type, ratio=body.ratio, group_id=body.groupId,
                      prompts=prompt_record(body, style, translated))


def _when(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_to_wire(view: ImageView, viewer_id: int) -> dict[str, Any]:
    r = view.record
    prompts = r.prompts or {}
    return {
        "imageId": r.id,
        "createdAt": _when(r.created_at),
        "generationStatus": r.status,
        "generationError": r.error,
        "resolution": r.resolution,
        "ownerId": r.owner_id,
        # ours: what the record keeps that has no field of its own
        "etc": json.dumps({"platform": r.platform, "type": r.api_type, "ratio": r.ratio, "seed": r.seed,
                           "scaleSize": r.scale_size, "parentImageId": r.parent_id}, separators=(",", ":")),
        "bookmarked": any(b.owner_id == viewer_id for b in view.bookmarks),
        "base64": base64.b64encode(view.data).decode("ascii") if view.data is not None else None,
        "mimeType": r.mime_type,
        "Bought": [],  # pixelserve sells nothing: always empty
        "Bookmarks": [{"userId": b.owner_id, "imageId": b.image_id} for b in view.bookmarks],
        "Upscaled": [
            {"imageId": u.id, "type": "upscale", "scaleSize": [u.scale_size],
             "generationStatus": u.status,  # not in Studio spec
             "Image": {"DownloadLog": [], "CollectionInfo": {"enabled": False}}}
            for u in view.upscaled
        ],
        "GenerationInfo": {
            "originalPrompt": prompts.get("originalPrompt"),
            "super": prompts.get("super"),
            "main": prompts.get("main"),
            "variationId": r.variation_id,
            "groupId": r.group_id,
            "blurReason": r.blur_reason,
            # not in Studio spec: the other prompt fields as sent, and where "main" came from
            "promptSource": prompts.get("promptSource"),
            "style": prompts.get("style"),
            **{k: prompts.get(k) for k in ("randomPrompt", "initialPrompt", "enhancedPrompt",
                                           "captionPrompt", "captionTPrompt")},
        },
    }


def response(views: list[ImageView], balances, viewer_id: int) -> dict[str, Any]:
    return {"images": [image_to_wire(v, viewer_id) for v in views], **balances.to_wire()}


def style_to_wire(row) -> dict[str, Any]:  # not in Studio spec
    return {"id": row.id, "name": row.name, "builtIn": row.owner_id is None, "ownerId": row.owner_id,
            "promptTemplate": row.prompt_template, "negativePrompt": row.negative_prompt, "sampler": row.sampler,
            "steps": row.steps, "cfgScale": row.cfg_scale, "lora": row.lora}


def style_spec(row) -> StyleSpec:
    return StyleSpec(row.name, row.prompt_template, row.negative_prompt, row.sampler, row.steps, row.cfg_scale,
                     row.lora)


def collection_to_wire(row) -> dict[str, Any]:  # not in Studio spec
    return {"id": row.id, "name": row.name, "ownerId": row.owner_id, "styleId": row.style_id,
            "images": list(row.images or [])}


def check_platform(value: str | None) -> str:
    value = "web" if value is None else value
    if value not in PLATFORMS:
        raise InvalidRequest(f"must be one of {', '.join(PLATFORMS)}, got {value!r}", field="X-Platform")
    return value
