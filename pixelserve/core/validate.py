"""Capability and limit checks of a translated request against the chosen model.

Dialects check their own wire ranges (protocol.py); this checks what any request must meet to
run at all, whatever dialect it came from, and fills the random seeds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pixelserve.core.model_config import FAMILY_SCHEDULERS
from pixelserve.core.request import MAX_SEED, GenerationRequest
from pixelserve.core.samplers import SAMPLERS
from pixelserve.errors import InvalidRequest, NotFound, NotSupported

MAX_STEPS = 500
MAX_IMAGES = 16


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 4096 * 4096


_ISSUED = object()  # only validated() makes a ValidRequest


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed the field checks and the model-aware checks: the only kind the service
    pipeline admits (the way TGI separates ValidGenerateRequest from GenerateRequest)."""

    request: GenerationRequest
    model: Any  # the engine's ModelInfo of request.model
    _issued: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._issued is not _ISSUED:
            raise TypeError("a ValidRequest comes only from core.validate.validated()")


def validated(request: GenerationRequest, models: Iterable, limits: Limits,
              model_check: Callable[[GenerationRequest], None]) -> ValidRequest:
    """``validate`` (fields against the model), then ``model_check`` (the engine's model-aware checks:
    token limits, adapter files, family features); either raises before anything is recorded."""
    models = list(models)
    request = validate(request, models, limits)
    model_check(request)
    model = next(m for m in models if m.id == request.model)
    return ValidRequest(request, model, _ISSUED)


def validate(request: GenerationRequest, models: Iterable, limits: Limits = Limits()) -> GenerationRequest:
    """Returns the request with seeds filled; raises InvalidRequest/NotFound/NotSupported."""
    by_id = {m.id: m for m in models}
    model = by_id.get(request.model)
    if model is None:
        raise NotFound(f"unknown model {request.model!r}", field="model")
    if request.task == "post":  # post-processing of an existing image (Studio upscales)
        if request.post.upscale is not None and request.post.upscale not in (2, 4):
            raise InvalidRequest("must be 2 or 4", field="scale")
        return request
    if request.task not in model.tasks:
        raise NotSupported(f"model {model.id} ({model.family}) cannot do {request.task}", field="task")
    if request.task == "txt2img" and not request.prompt.strip():
        raise InvalidRequest("must not be empty", field="prompt")
    for name in ("width", "height"):
        v = getattr(request, name)
        if v < 64 or v % 8:
            raise InvalidRequest(f"must be a multiple of 8 and at least 64, got {v}", field=name)
    if request.width * request.height > limits.max_pixels:
        raise InvalidRequest(f"{request.width}x{request.height} is over {limits.max_pixels} pixels", field="width")
    if not 1 <= request.num_images <= MAX_IMAGES:
        raise InvalidRequest(f"must be 1 to {MAX_IMAGES}", field="num_images")
    if not 1 <= request.steps <= MAX_STEPS:
        raise InvalidRequest(f"must be 1 to {MAX_STEPS}", field="steps")
    if not 0 <= request.guidance_scale <= 50:
        raise InvalidRequest("must be 0 to 50", field="guidance_scale")
    if request.scheduler is not None and request.scheduler not in SAMPLERS:
        raise InvalidRequest(f"unknown scheduler {request.scheduler!r}", field="scheduler")
    allowed = FAMILY_SCHEDULERS.get(model.family)
    if request.scheduler is not None and allowed is not None and request.scheduler not in allowed:
        raise NotSupported(f"model {model.id} ({model.family}) runs only the {', '.join(allowed)} samplers",
                           field="scheduler")
    if request.task in ("img2img", "inpaint", "variation") and request.init_image is None:
        raise InvalidRequest(f"{request.task} needs an input image", field="image")
    if request.task == "inpaint" and request.mask_image is None:
        raise InvalidRequest("inpainting needs a mask", field="mask")
    if request.strength is not None and not 0 < request.strength <= 1:
        raise InvalidRequest("must be in (0, 1]", field="strength")
    if request.task in ("img2img", "inpaint") and request.strength is not None \
            and int(request.steps * request.strength) < 1:  # diffusers would run no step at all and fail
        raise InvalidRequest(f"with {request.steps} steps, strength {request.strength} leaves no denoising step; "
                             "raise steps or strength", field="strength")
    if request.use_refiner and not model.has_refiner:
        raise NotSupported(f"model {model.id} has no refiner configured", field="refiner")
    if request.post.face_refine is not None and "img2img" not in model.tasks:
        raise NotSupported(f"model {model.id} ({model.family}) cannot repaint faces (no img2img)",
                           field="face_refiner")
    if request.post.upscale is not None and request.post.upscale not in (2, 4):
        raise InvalidRequest("must be 2 or 4", field="scale")
    if request.post.hires is not None:
        _check_hires(request, model, limits)
    if request.subseed_strength or request.subseeds is not None:
        _check_variation(request)
    if request.eta is not None and (request.scheduler != "ddim" or not 0 <= request.eta <= 1):
        raise InvalidRequest("eta is DDIM's: 0 to 1 with the ddim scheduler", field="eta")
    if request.seed_resize_from is not None:
        w, h = request.seed_resize_from
        if request.task != "txt2img" or not (64 <= w and 64 <= h and w * h <= limits.max_pixels):
            raise InvalidRequest(f"seed resize from {w}x{h}: txt2img only, at least 64x64 and at most "
                                 f"{limits.max_pixels} pixels", field="seed_resize_from")
    seeds = request.seeds
    if seeds is None:
        seeds = (None,) * request.num_images
    seeds = tuple(secrets.randbelow(MAX_SEED + 1) if s is None else s for s in seeds)  # None: a random one
    if len(seeds) != request.num_images:
        raise InvalidRequest(f"needs {request.num_images} seeds (one per image), got {len(seeds)}", field="seed")
    for s in seeds:
        if not 0 <= s <= MAX_SEED:
            raise InvalidRequest(f"each seed must be 0 to {MAX_SEED}", field="seed")
    return request.with_(seeds=tuple(int(s) for s in seeds))


def _check_hires(request: GenerationRequest, model: Any, limits: Limits) -> None:
    hires = request.post.hires
    if "img2img" not in model.tasks:
        raise NotSupported(f"model {model.id} ({model.family}) has no img2img for a second pass", field="hires")
    for name, v in (("width", hires.width), ("height", hires.height)):
        if v < 64 or v % 8:
            raise InvalidRequest(f"the second pass's {name} must be a multiple of 8 and at least 64, got {v}",
                                 field="hires")
    if hires.width * hires.height > limits.max_pixels:
        raise InvalidRequest(f"the second pass's {hires.width}x{hires.height} is over {limits.max_pixels} pixels",
                             field="hires")
    if not 0 < hires.strength <= 1:
        raise InvalidRequest("the second pass's strength must be in (0, 1]", field="hires")
    if not 1 <= hires.steps <= MAX_STEPS or int(hires.steps * hires.strength) < 1:
        raise InvalidRequest(f"the second pass runs int(steps x strength) steps: {hires.steps} x {hires.strength} "
                             "leaves none, or steps is over the limit", field="hires")
    if hires.scheduler is not None and hires.scheduler not in SAMPLERS:
        raise InvalidRequest(f"unknown scheduler {hires.scheduler!r}", field="hires")
    latent_modes = ("bilinear", "bilinear-aa", "bicubic", "bicubic-aa", "nearest", "nearest-exact")
    if hires.resample not in ("lanczos", "nearest", *(f"latent:{m}" for m in latent_modes)):
        raise InvalidRequest("the second pass's resample must be lanczos, nearest or latent:<mode>", field="hires")


def _check_variation(request: GenerationRequest) -> None:
    if not 0 <= request.subseed_strength <= 1:
        raise InvalidRequest("must be 0 to 1", field="subseed_strength")
    if request.subseed_strength and request.task != "txt2img":
        raise NotSupported(f"variation seeds are built for txt2img only, not {request.task}", field="subseed_strength")
    if request.subseeds is None or len(request.subseeds) != request.num_images:
        raise InvalidRequest(f"needs {request.num_images} subseeds (one per image)", field="subseed")
    if not all(0 <= s <= MAX_SEED for s in request.subseeds):
        raise InvalidRequest(f"each subseed must be 0 to {MAX_SEED}", field="subseed")
