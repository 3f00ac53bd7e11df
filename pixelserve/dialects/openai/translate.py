"""OpenAI wire <-> internal request/result. Pure functions, covered by golden-JSON tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Callable, Union

from PIL import Image, ImageOps

from pixelserve.core.images import INPUT_FORMATS, fit, open_image_bytes
from pixelserve.core.request import GenerationRequest, ImagePromptRef, PostProcess
from pixelserve.dialects.openai import sizes
from pixelserve.dialects.openai.protocol import MAX_PROMPT, PROMPT_LIMITS, EditForm, GenerateRequest, VariationForm
from pixelserve.errors import InvalidRequest, NotSupported
from pixelserve.service.pipeline import OutputOptions, ServiceResult

AnyBody = Union[GenerateRequest, EditForm, VariationForm]

#: The spec's input limit per image file (the server's body limit applies first).
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGES = 16
#: An edit without a mask is an img2img pass from the image at this strength (input_fidelity high
#: keeps more of it).
EDIT_STRENGTH = {"low": 0.75, "high": 0.5}
#: A variation of an SD/SDXL model (no image-embedding decoder): img2img at this strength from the
#: (1:1-resized) image with an empty prompt, as Karlo's variations; the image also guides it as an
#: image prompt when the model has an IP-Adapter.
VARIATION_STRENGTH = 0.75
URL_TTL_SECONDS = 3600  # OpenAI: "URLs are only valid for 60 minutes"


class ModerationBlocked(InvalidRequest):
    """An image the NSFW check flagged (``moderation`` auto): the request is refused as OpenAI's is."""


@dataclass(frozen=True)
class Target:
    """The configured model behind the request's ``model``."""

    name: str  # as sent: an OpenAI name or a model id
    model_id: str
    family: str
    tasks: tuple[str, ...] = ("txt2img", "img2img", "inpaint")
    demo: bool = False
    image_prompt: bool = False  # an IP-Adapter is configured

    @property
    def gpt_image(self) -> bool:
        return self.name.startswith(("gpt-image", "chatgpt-image"))


@dataclass(frozen=True)
class Plan:
    """What a route runs and how it answers."""

    request: GenerationRequest
    output: OutputOptions
    response_format: str  # url | b64_json
    size: str  # as answered
    quality: str | None
    record: dict = field(default_factory=dict)  # more keys for the job record
    input_tokens: int = 0
    stream: bool = False  # answer with Server-Sent Events (streaming.py)
    partial_images: int = 0  # at most this many partial images before the final one


def check_common(body: AnyBody, target: Target) -> None:
    """What this server refuses whatever the endpoint (400, naming the field)."""
    if getattr(body, "background", None) == "transparent":
        raise InvalidRequest("transparent backgrounds are not supported: the models draw opaque images; "
                             "send opaque or auto", field="background")
    if getattr(body, "output_format", None) in ("gif", "svg"):
        raise InvalidRequest(f"{body.output_format} is not supported: png, jpeg or webp", field="output_format")
    for name in ("complexity", "frame_count", "frame_duration_ms", "svg"):
        if getattr(body, name, None) is not None:
            raise InvalidRequest("is not supported by this server", field=name)
    prompt = getattr(body, "prompt", None)
    limit = PROMPT_LIMITS.get(target.name, MAX_PROMPT)
    if prompt is not None and len(prompt) > limit:
        raise InvalidRequest(f"must be at most {limit} characters for {target.name}", field="prompt")
    if target.name == "dall-e-3" and (body.n or 1) != 1:
        raise InvalidRequest("dall-e-3 makes one image per request: n must be 1", field="n")


def response_format(body: AnyBody, target: Target) -> str:
    """As sent; absent: b64_json for GPT image names (they always answer base64), else url."""
    return body.response_format or ("b64_json" if target.gpt_image else "url")


def output_options(body: AnyBody, generated: tuple[int, int], answered: tuple[int, int]) -> OutputOptions:
    fmt = getattr(body, "output_format", None) or "png"
    compression = getattr(body, "output_compression", None)
    quality = None if fmt == "png" else max(1, 100 if compression is None else compression)
    return OutputOptions(format=fmt, quality=quality, size=answered if answered != generated else None)


def _record(body: AnyBody, target: Target) -> dict:
    out = {"openai_model": target.name}
    for name in ("user", "safety_identifier"):
        if getattr(body, name, None):
            out[name] = getattr(body, name)
    return out


def _post(body: AnyBody) -> PostProcess:
    return PostProcess(nsfw_check=getattr(body, "moderation", None) != "low")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def generation_to_request(body: GenerateRequest, target: Target, max_pixels: int) -> Plan:
    check_common(body, target)
    generated, answered = sizes.plan_size(body.size, target.family, target.demo, max_pixels)
    prompt, guidance, style = sizes.styled(body.prompt, body.style)
    request = GenerationRequest(
        model=target.model_id, task="txt2img", prompt=prompt, width=generated[0], height=generated[1],
        num_images=body.n or 1, steps=sizes.steps_for(body.quality), guidance_scale=guidance, style=style,
        post=_post(body))
    return Plan(request, output_options(body, generated, answered), response_format(body, target),
                _size_text(answered), sizes.answered_quality(body.quality), _record(body, target),
                sizes.clip_tokens(body.prompt), bool(body.stream), body.partial_images or 0)


def _open(raw: bytes, name: str, max_pixels: int) -> Image.Image:
    # The format comes from the bytes: the SDK names raw bytes "upload" as application/octet-stream.
    return open_image_bytes(raw, field=name, max_bytes=MAX_IMAGE_BYTES, max_pixels=max_pixels, formats=INPUT_FORMATS)


def repaint_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenAI's mask (fully transparent = edit) as pixelserve's (white = repaint)."""
    if mask.mode != "RGBA":
        raise InvalidRequest("must be a PNG with an alpha channel: its fully transparent pixels mark the area "
                             "to edit", field="mask")
    if mask.size != size:
        raise InvalidRequest(f"must be the same size as image ({size[0]}x{size[1]}), got "
                             f"{mask.width}x{mask.height}", field="mask")
    repaint = mask.getchannel("A").point(lambda a: 255 if a == 0 else 0)
    if repaint.getbbox() is None:
        raise InvalidRequest("has no fully transparent pixel: nothing to edit", field="mask")
    return repaint


def edit_to_request(body: EditForm, images: list[bytes], mask: bytes | None, target: Target,
                    max_pixels: int) -> Plan:
    check_common(body, target)
    if not images:
        raise InvalidRequest("is required (one file as image, or several as image[])", field="image")
    if len(images) > MAX_IMAGES:
        raise InvalidRequest(f"at most {MAX_IMAGES} images, got {len(images)}", field="image")
    first = _open(images[0], "image", max_pixels).convert("RGB")
    references = tuple(_open(raw, "image", max_pixels).convert("RGB") for raw in images[1:])
    if references and not target.image_prompt:
        raise InvalidRequest(f"several images need an image-prompt adapter (IP-Adapter), and model {target.name} "
                             "has none configured here: send one image", field="image")
    repaint = None if mask is None else repaint_mask(_open(mask, "mask", max_pixels), first.size)
    if body.size in (None, "auto"):  # the image's own size, cut to multiples of 8: its pixels stay as sent
        width, height = first.width // 8 * 8, first.height // 8 * 8
        if min(width, height) < sizes.MIN_SIDE:
            raise InvalidRequest(f"must be at least {sizes.MIN_SIDE}x{sizes.MIN_SIDE} pixels, got "
                                 f"{first.width}x{first.height}", field="image")
        start = first.crop((0, 0, width, height))
        repaint = None if repaint is None else repaint.crop((0, 0, width, height))
    else:
        width, height = sizes.parse_size(body.size, max_pixels)
        start = fit(first, width, height)
        repaint = None if repaint is None else ImageOps.fit(repaint, (width, height), Image.Resampling.NEAREST)
    task = "img2img" if repaint is None else "inpaint"
    if task not in target.tasks:
        raise NotSupported(f"model {target.name} ({target.family}) cannot edit images ({task})", field="model")
    strength = 1.0 if repaint is not None else EDIT_STRENGTH[body.input_fidelity or "low"]
    request = GenerationRequest(
        model=target.model_id, task=task, prompt=body.prompt, width=width, height=height, num_images=body.n or 1,
        steps=sizes.steps_for(body.quality), init_image=start, mask_image=repaint, strength=strength,
        image_prompt=ImagePromptRef(images=references) if references else None, post=_post(body))
    return Plan(request, output_options(body, (width, height), (width, height)), response_format(body, target),
                _size_text((width, height)), sizes.answered_quality(body.quality), _record(body, target),
                sizes.clip_tokens(body.prompt), bool(body.stream), body.partial_images or 0)


def variation_to_request(body: VariationForm, image: bytes, target: Target, max_pixels: int) -> Plan:
    check_common(body, target)
    picture = _open(image, "image", max_pixels).convert("RGB")
    if picture.width != picture.height:  # as Karlo's variations: other ratios are resized to 1:1
        side = max(picture.size)
        picture = picture.resize((side, side), Image.Resampling.LANCZOS)
    generated, answered = sizes.plan_size(body.size, target.family, target.demo, max_pixels, default="1024x1024")
    common = dict(model=target.model_id, prompt="", width=generated[0], height=generated[1],
                  num_images=body.n or 1, steps=sizes.steps_for(None), post=_post(body))
    if "variation" in target.tasks:  # unCLIP: the image embedding drives the decoder
        request = GenerationRequest(task="variation", init_image=picture, **common)
    elif "img2img" in target.tasks:
        request = GenerationRequest(
            task="img2img", init_image=picture.resize(generated, Image.Resampling.LANCZOS),
            strength=VARIATION_STRENGTH, image_prompt=ImagePromptRef(images=(picture,)) if target.image_prompt
            else None, **common)
    else:
        raise NotSupported(f"model {target.name} ({target.family}) cannot make variations", field="model")
    return Plan(request, output_options(body, generated, answered), response_format(body, target),
                _size_text(answered), None, _record(body, target), 0)


def check_moderation(result: ServiceResult, threshold: float) -> None:
    if any(im.nsfw_score is not None and im.nsfw_score >= threshold for im in result.images):
        raise ModerationBlocked("Your request was rejected by the safety system: an image was flagged by the "
                                "NSFW check (moderation=auto); no image is returned")


def image_value(plan: Plan, url_of: Callable) -> Callable:
    """``{"url": ...}`` or ``{"b64_json": ...}`` of a served image (``url_of(served_image)``)."""
    if plan.response_format == "url":
        return lambda im: {"url": url_of(im)}
    return lambda im: {"b64_json": base64.b64encode(im.data).decode("ascii")}


def result_to_wire(plan: Plan, result: ServiceResult, value: Callable, created: int) -> dict:
    out = {
        "created": created,
        "data": [{**value(im), "revised_prompt": None} for im in result.images],
        "background": "opaque",
        "output_format": plan.output.format,
        "quality": plan.quality,
        "size": plan.size,
        # input: the prompt's CLIP tokens (sizes.clip_tokens); images are not counted in tokens here,
        # and pixelserve meters output in images, not tokens: 0.
        "usage": {"input_tokens": plan.input_tokens,
                  "input_tokens_details": {"text_tokens": plan.input_tokens, "image_tokens": 0},
                  "output_tokens": 0, "output_tokens_details": {"text_tokens": 0, "image_tokens": 0},
                  "total_tokens": plan.input_tokens},
    }
    if plan.quality is None:
        del out["quality"]
    return out
