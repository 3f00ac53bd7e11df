"""A1111 wire -> internal request. Pure functions (images: images.py; names: samplers.py; prompt
syntax: prompt.py, schedule.py; hires: hires.py; the answer: answer.py).

What a request may carry that is not built here is refused with a 400 naming the field when its
value is not A1111's default (webuiapi sends every field, so defaults must pass): ``NOT_BUILT``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from PIL import Image

from pixelserve.core.request import (MAX_SEED, FaceRefine, GenerationRequest, LoraRef, PostProcess,
                                     TextualInversionRef)
from pixelserve.dialects.a1111 import hires, images, infotext, prompt, samplers, schedule
from pixelserve.dialects.a1111.protocol import Img2ImgRequest, Processing, Txt2ImgRequest
from pixelserve.errors import InvalidRequest
from pixelserve.service.pipeline import OutputOptions

VERSION = "pixelserve"  # infotext "Version" / info "version"
#: restore_faces: pixelserve's face refiner (engine/post/face_refine.py: faces repainted larger and pasted
#: back), not A1111's GFPGAN/CodeFormer; every face the detector is at least half sure of, once.
FACE_RESTORER = "pixelserve face refiner"
FACE_REFINE = FaceRefine(bbox_size_threshold=1.0, bbox_filter_threshold=0.5, restoration_repeats=1, weight_sft=0.5)
MAX_IMAGE_BYTES = 50 * 1024 * 1024
SAMPLES_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}
JPEG_QUALITY = 80  # A1111's jpeg_quality option default

#: field -> (A1111's "off" values, why it is not built). A value outside them is a 400 naming the field.
NOT_BUILT: dict[str, tuple[tuple, str]] = {
    "firstpass_image": ((None,), "firstpass_image is not supported by this server"),
    "script_name": ((None, ""), "no scripts are available on this server (see /sdapi/v1/scripts)"),
    "image_cfg_scale": ((None, 1.5, 0, 1, 1.0), "image_cfg_scale needs an instruct-pix2pix model, not served here"),
    "latent_mask": ((None,), "latent_mask is not supported by this server"),
    "initial_noise_multiplier": ((None, 1, 1.0), "initial_noise_multiplier is not supported by this server"),
}
#: Sampler fine-tuning A1111 reads only for some k-diffusion samplers; accepted at its defaults.
SAMPLER_TUNING = {"s_churn": (None, 0, 0.0), "s_tmax": (None, 0, 0.0),
                  "s_tmin": (None, 0, 0.0), "s_noise": (None, 1, 1.0), "s_min_uncond": (None, 0, 0.0)}
#: override_settings keys acted on per request (the per-key ones of /options); any other is a 400 naming it.
OVERRIDES = ("sd_model_checkpoint", "CLIP_stop_at_last_layers", "samples_format", "sd_vae")


@dataclass(frozen=True)
class Target:
    """The model the request runs on, with what the answer reports of it."""

    model_id: str
    family: str
    title: str  # A1111's sd_model_name / infotext "Model"
    hash: str | None
    tasks: tuple[str, ...] = ("txt2img", "img2img", "inpaint")
    refiner: str | None = None  # the file or folder name of the model's configured SDXL refiner


@dataclass(frozen=True)
class Plan:
    request: GenerationRequest
    output: OutputOptions  # always png from the service: the infotext is written into it here
    fmt: str  # png | jpeg | webp, as answered
    sampler: samplers.Resolved
    seed: int
    subseed: int
    subseeds: tuple[int, ...] | None
    body: Processing
    prompt: str  # as sent (with its tags), styles applied: the infotext and info report it
    negative: str
    clip_skip: int
    loras: tuple[prompt.LoraTag, ...] = ()
    kind: str = "txt2img"
    record: dict = field(default_factory=dict)


def with_infotext(body: Processing) -> Processing:
    """``infotext``: its values fill every field the request did not set (A1111 ``text2imgapi``)."""
    if not body.infotext:
        return body
    fields, settings = infotext.request_fields(body.infotext)
    fill = {k: v for k, v in fields.items() if k in type(body).model_fields and not body.sent(k)}
    overrides = dict(body.override_settings or {})
    for k, v in settings.items():
        overrides.setdefault(k, v)
    update = {**fill, "override_settings": overrides or body.override_settings}
    return body.model_validate({**body.model_dump(exclude_unset=True), **update})


def settings_of(body: Processing, own: dict[str, Any] | None = None,
                fixed: Mapping[str, Any] = MappingProxyType({})) -> dict[str, Any]:
    """The options the job runs with: the caller's own (``/options``, per key) under ``override_settings``.
    ``fixed``: options describing the server (``options.fixed_options``): sent with their value, a no-op;
    with another, a 400 naming it."""
    sent = dict(body.override_settings or {})
    for key, value in fixed.items():
        if key in sent:
            if sent.pop(key) != value:
                raise InvalidRequest(f"is {value!r} on this server and cannot be changed",
                                     field=f"override_settings.{key}")
    return {**(own or {}), **sent}


def model_name(body: Processing) -> str | None:
    """The checkpoint the request asks for (override_settings.sd_model_checkpoint), if any."""
    value = (body.override_settings or {}).get("sd_model_checkpoint")
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("must be a checkpoint title or name", field="override_settings.sd_model_checkpoint")
    return value or None


def check(body: Processing, settings: dict[str, Any]) -> None:
    """What is not built, refused by name (only when not at A1111's default)."""
    for name, (off, why) in NOT_BUILT.items():
        if name in type(body).model_fields and getattr(body, name) not in off:
            raise InvalidRequest(why, field=name)
    for name, off in SAMPLER_TUNING.items():
        if getattr(body, name) not in off:
            raise InvalidRequest("sampler fine-tuning (s_churn, s_tmin, s_tmax, s_noise, s_min_uncond) is not "
                               "supported by this server; send the defaults or leave it out", field=name)
    if body.alwayson_scripts:
        name = next(iter(body.alwayson_scripts))
        # A1111: "always on script x not found" (422)
        raise InvalidRequest(f"always on script {name} not found (this server has none: /sdapi/v1/scripts)",
                             field="alwayson_scripts")
    if body.script_args:
        raise InvalidRequest("script_args needs a script, and this server has none", field="script_args")
    for key in settings:
        if key not in OVERRIDES:
            raise InvalidRequest(f"the option {key!r} cannot be overridden per request on this server (supported: "
                               f"{', '.join(OVERRIDES)})", field=f"override_settings.{key}")
    vae = settings.get("sd_vae")
    if vae not in (None, "Automatic", "None"):
        raise InvalidRequest("only Automatic (the model's own VAE) is available", field="override_settings.sd_vae")
    if not 1 <= body.batch_size <= 16 or not 1 <= body.n_iter <= 16:
        bad = "batch_size" if not 1 <= body.batch_size <= 16 else "n_iter"
        raise InvalidRequest("must be 1 to 16", field=bad)
    if body.batch_size * body.n_iter > 16:
        raise InvalidRequest(f"batch_size x n_iter is {body.batch_size * body.n_iter}; at most 16 images a request",
                             field="n_iter")
    if body.force_task_id is not None and not body.force_task_id:
        raise InvalidRequest("must not be empty", field="force_task_id")


def _clip_skip(settings: dict[str, Any]) -> int:
    value = settings.get("CLIP_stop_at_last_layers", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= int(value) <= 12:
        raise InvalidRequest("must be 1 to 12", field="override_settings.CLIP_stop_at_last_layers")
    return int(value)


def samples_format(settings: dict[str, Any]) -> str:
    value = settings.get("samples_format", "png")
    fmt = SAMPLES_FORMATS.get(str(value).lower())
    if fmt is None:
        raise InvalidRequest("must be png, jpg or webp", field="override_settings.samples_format")
    return fmt


def _seed(value: int, name: str, rng: Callable[[int], int]) -> int:
    seed = rng(4294967294) if value == -1 else int(value)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"must be -1 or 0 to {MAX_SEED}", field=name)
    return seed


def seeds(body: Processing, count: int, rng: Callable[[int], int] = random.randrange
          ) -> tuple[int, tuple[int, ...], int, tuple[int, ...] | None]:
    """(seed, one per image, subseed, one per image or None). -1 is a random one. Without variation
    image i gets seed + i; with it (subseed_strength > 0) every image has the seed and image i the
    subseed + i (A1111 ``process_images_inner``)."""
    seed = _seed(body.seed, "seed", rng)
    if not 0 <= body.subseed_strength <= 1:
        raise InvalidRequest("must be 0 to 1", field="subseed_strength")
    if not body.subseed_strength:
        return seed, tuple((seed + i) % (MAX_SEED + 1) for i in range(count)), body.subseed, None
    subseed = _seed(body.subseed, "subseed", rng)
    return seed, (seed,) * count, subseed, tuple((subseed + i) % (MAX_SEED + 1) for i in range(count))


#: A style by name: (prompt, negative prompt); "{prompt}" in either marks where the request's text goes.
Styles = Mapping[str, tuple[str, str]]
#: Textual inversions the prompts name: name (its word in the prompt) -> file.
Embeddings = Mapping[str, str]


def names_word(text: str, name: str) -> bool:
    """Whether ``name`` is a word of ``text`` (not part of a longer name)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text) is not None


def _styled(text: str, style: str) -> str:
    """A1111 ``apply_styles_to_prompt``: into the style's "{prompt}", else appended after ", "."""
    if "{prompt}" in style:
        return style.replace("{prompt}", text)
    return ", ".join(t for t in (text, style) if t)


def styled(body: Processing, styles: Styles) -> tuple[str, str]:
    """(prompt, negative prompt) with the request's ``styles`` applied in order; an unknown name is a 400."""
    positive, negative = body.prompt, body.negative_prompt
    for name in body.styles or ():
        if name not in styles:
            known = ", ".join(repr(n) for n in styles) or "none"
            raise InvalidRequest(f"no style named {name!r}; your styles: {known} (see /sdapi/v1/prompt-styles)",
                                 field="styles")
        style_prompt, style_negative = styles[name]
        positive, negative = _styled(positive, style_prompt), _styled(negative, style_negative)
    return positive, negative


#: Ancestral samplers: diffusers' run at eta 1 (A1111's eta_ancestral default) and take no other.
ANCESTRAL = ("euler_a", "dpm2_a", "dpm2_a_karras")


def eta(body: Processing, sampler: str) -> float | None:
    """DDIM's eta is passed on (None: 0, A1111's eta_ddim default); ancestral samplers run at 1 only;
    the other samplers take no eta (A1111 ignores it there too)."""
    if body.eta is None:
        return None
    if sampler == "ddim":
        if not 0 <= body.eta <= 1:
            raise InvalidRequest("must be 0 to 1", field="eta")
        return float(body.eta)
    if sampler in ANCESTRAL and body.eta != 1:
        raise InvalidRequest("ancestral samplers run at eta 1 on this server", field="eta")
    return None


def seed_resize_from(body: Processing, kind: str) -> tuple[int, int] | None:
    """A1111 resizes the seed only when both sides are > 0 (webuiapi sends 0, A1111's default is -1)."""
    w, h = body.seed_resize_from_w, body.seed_resize_from_h
    if w <= 0 or h <= 0:
        return None
    if kind != "txt2img":
        raise InvalidRequest("seed resizing is built for txt2img only", field="seed_resize_from_w")
    if w % 8 or h % 8:
        raise InvalidRequest(f"{w}x{h}: both must be multiples of 8", field="seed_resize_from_w")
    return w, h


def refiner(body: Processing, target: Target) -> tuple[bool, float | None]:
    """(use the refiner, switch point): A1111 runs one only when ``refiner_checkpoint`` names it; here
    that is the SDXL refiner configured with the model (its file or folder name, with or without the
    extension), from ``refiner_switch_at`` (default 0.8) of the steps."""
    name = body.refiner_checkpoint
    if name in (None, "", "None"):
        return False, None
    known = {target.refiner.lower(), target.refiner.rsplit(".", 1)[0].lower()} if target.refiner else set()
    if name.strip().lower().partition(" [")[0] not in known:
        has = f"its refiner is {target.refiner!r}" if target.refiner else "it has no refiner configured"
        raise InvalidRequest(f"{name!r} is not a refiner of {target.model_id}: {has}", field="refiner_checkpoint")
    switch = 0.8 if body.refiner_switch_at is None else float(body.refiner_switch_at)
    if not 0 < switch < 1:
        raise InvalidRequest("must be between 0 and 1", field="refiner_switch_at")
    return True, switch


def prompts(body: Processing, texts: tuple[str, str]) -> tuple[prompt.Parsed, prompt.Parsed]:
    enabled = not body.disable_extra_networks
    positive = prompt.parse(texts[0], "prompt", extra_networks=enabled, editing=True)
    negative = prompt.parse(texts[1], "negative_prompt", extra_networks=enabled)
    if negative.loras:
        raise InvalidRequest("<lora:...> tags belong in prompt", field="negative_prompt")
    return positive, negative


def common(body: Processing, target: Target, lora_path: Callable[[str], str], kind: str,
           settings: dict[str, Any], styles: Styles, embeddings: Embeddings) -> tuple[dict, dict]:
    """(GenerationRequest keywords shared by txt2img and img2img, Plan keywords)."""
    check(body, settings)
    texts = styled(body, styles)
    resolved = samplers.resolve(body.sampler_name or body.sampler_index, body.scheduler,
                                field="sampler_name" if body.sampler_name else "sampler_index")
    positive, negative = prompts(body, texts)
    count = body.batch_size * body.n_iter
    first, all_seeds, subseed, subseeds = seeds(body, count)
    if subseeds is not None and kind != "txt2img":
        raise InvalidRequest("variation seeds are built for txt2img only", field="subseed_strength")
    clip_skip = _clip_skip(settings)
    loras = tuple(LoraRef(name=t.name, path=lora_path(t.name), weight=t.weight) for t in positive.loras)
    fmt = samples_format(settings)
    steps_run = body.steps if kind == "txt2img" else max(1, int(body.steps * (body.denoising_strength or 0)))
    edits = tuple(schedule.schedule(positive.text, steps_run))
    if len(edits) > 1 and target.family != "sd":
        raise InvalidRequest(f"prompt editing [a:b:when] and alternation [a|b] are built for sd models, not "
                             f"{target.family}", field="prompt")
    use_refiner, switch = refiner(body, target)
    request = dict(model=target.model_id, prompt=edits[0][1], negative_prompt=negative.text or None,
                   use_refiner=use_refiner, high_noise_frac=switch,
                   prompt_schedule=edits if len(edits) > 1 else (),
                   width=body.width, height=body.height, num_images=count, seeds=all_seeds, steps=body.steps,
                   subseeds=subseeds, subseed_strength=float(body.subseed_strength) if subseeds else 0.0,
                   seed_resize_from=seed_resize_from(body, kind), eta=eta(body, resolved.sampler),
                   guidance_scale=body.cfg_scale, scheduler=resolved.sampler, prompt_weighting=True,
                   prompt_break=True, clip_skip=clip_skip - 1 or None, loras=loras, tiling=bool(body.tiling),
                   textual_inversions=tuple(TextualInversionRef(name=n, path=p, token=n)
                                            for n, p in embeddings.items()),
                   post=PostProcess(face_refine=FACE_REFINE if body.restore_faces else None))
    plan = dict(output=OutputOptions(format="png"), fmt=fmt, sampler=resolved, seed=first, subseed=subseed,
                subseeds=subseeds, body=body,
                prompt=texts[0], negative=texts[1], clip_skip=clip_skip, loras=positive.loras, kind=kind,
                record={"a1111_task_id": body.force_task_id} if body.force_task_id else {})
    return request, plan


def txt2img_to_request(body: Txt2ImgRequest, target: Target, lora_path: Callable[[str], str],
                       settings: dict[str, Any] | None = None, styles: Styles = MappingProxyType({}),
                       embeddings: Embeddings = MappingProxyType({})) -> Plan:
    settings = settings_of(body) if settings is None else settings
    request, plan = common(body, target, lora_path, "txt2img", settings, styles, embeddings)
    if body.enable_hr:
        request["post"] = PostProcess(hires=hires.plan(body), face_refine=request["post"].face_refine)
    return Plan(GenerationRequest(task="txt2img", **request), **plan)


def img2img_to_request(body: Img2ImgRequest, target: Target, lora_path: Callable[[str], str],
                       max_pixels: int, settings: dict[str, Any] | None = None,
                       styles: Styles = MappingProxyType({}), embeddings: Embeddings = MappingProxyType({})) -> Plan:
    settings = settings_of(body) if settings is None else settings
    request, plan = common(body, target, lora_path, "img2img", settings, styles, embeddings)
    images.check_resize_mode(body.resize_mode)
    if not body.init_images:
        raise InvalidRequest("Init image not found", field="init_images")  # A1111: 404
    if len(body.init_images) > 1:
        raise InvalidRequest("one init image per request on this server (A1111 pairs several with batch_size)",
                           field="init_images")
    if body.inpainting_fill not in (0, 1):
        what = {2: "latent noise", 3: "latent nothing"}.get(body.inpainting_fill)
        raise (InvalidRequest(f"{body.inpainting_fill} ({what}) is not supported by this server: use 0 (fill) or "
                            "1 (original)", field="inpainting_fill") if what else
               InvalidRequest("must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)",
                              field="inpainting_fill"))
    if not 0 < body.denoising_strength <= 1:
        raise InvalidRequest("must be in (0, 1]", field="denoising_strength")
    width, height = body.width, body.height
    init = images.decode(body.init_images[0], "init_images.0", MAX_IMAGE_BYTES, max_pixels).convert("RGB")
    init = images.resize(init, body.resize_mode, width, height)
    mask = None
    if body.mask:
        mask = images.binary_mask(images.decode(body.mask, "mask", MAX_IMAGE_BYTES, max_pixels))
        mask = images.resize(mask, body.resize_mode, width, height, Image.Resampling.NEAREST)
        if body.inpainting_mask_invert:
            mask = mask.point(lambda v: 255 - v)
        if mask.getbbox() is None:
            raise InvalidRequest("has no pixel to repaint (white, or alpha over 128 in RGBA)", field="mask")
        blur_x = body.mask_blur if body.mask_blur is not None else body.mask_blur_x
        blur_y = body.mask_blur if body.mask_blur is not None else body.mask_blur_y
        if body.inpainting_fill == 0:
            init = images.fill(init, mask)
        mask = images.blur(mask, blur_x, blur_y)
    task = "inpaint" if mask is not None else "img2img"
    if task not in target.tasks:
        raise InvalidRequest(f"model {target.model_id} ({target.family}) cannot do {task}", field="init_images")
    request.update(task=task, init_image=init, mask_image=mask, strength=body.denoising_strength,
                   inpaint_full_res=mask is not None and body.inpaint_full_res,
                   inpaint_full_res_padding=body.inpaint_full_res_padding)
    return Plan(GenerationRequest(**request), **plan)
