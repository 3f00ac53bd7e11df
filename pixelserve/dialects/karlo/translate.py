"""Karlo wire <-> internal request/result. Pure functions, covered by golden-JSON tests."""

from __future__ import annotations

import base64
from typing import Callable, Union

from PIL import Image

from pixelserve.core.images import HEIF_FORMATS, INPUT_FORMATS, decode_base64_image
from pixelserve.core.request import FaceRefine, GenerationRequest, PostProcess
from pixelserve.dialects.karlo.protocol import SCHEDULERS, InpaintingRequest, T2IRequest, VariationsRequest
from pixelserve.errors import InvalidRequest, NotSupported
from pixelserve.service.pipeline import OutputOptions, ServiceResult

AnyRequest = Union[T2IRequest, VariationsRequest, InpaintingRequest]

# Karlo's decoder schedulers are named for its v-prediction decoder. pixelserve keeps the served
# model's own prediction type (forcing v-prediction on an epsilon model draws garbage) and picks
# the matching sampler.
SCHEDULER_MAP = {"decoder_ddim_v_prediction": "ddim", "decoder_ddpm_v_prediction": "ddpm"}

#: The spec's input limits: 2 MB files; variations up to 2048 px a side, inpainting up to 1024.
MAX_IMAGE_BYTES = 2 * 1024 * 1024
VARIATION_MAX_SIDE = 2048
INPAINT_MAX_SIDE = 1024
#: An SD/SDXL model has no image-embedding decoder: a variation is an img2img pass at this
#: strength from the (1:1-resized) input, with an empty prompt.
VARIATION_STRENGTH = 0.75
#: Inpainting with a reference_image: the reference fills the masked area first and the model
#: repaints it at this strength, so the reference guides colours and layout of the edit.
REFERENCE_STRENGTH = 0.8


def post_options(body: AnyRequest) -> PostProcess:
    face = body.face_refiner
    return PostProcess(
        face_refine=None if face is None else FaceRefine(
            bbox_size_threshold=face.bbox_size_threshold, bbox_filter_threshold=face.bbox_filter_threshold,
            restoration_repeats=round(face.restoration_repeats), weight_sft=face.weight_sft),
        upscale=body.scale if body.upscale else None,
        nsfw_check=body.nsfw_checker,
    )


def _common(body: AnyRequest) -> dict:
    return dict(num_images=body.samples, seeds=tuple(body.seed) if body.seed is not None else None,
                steps=body.num_inference_steps, guidance_scale=body.guidance_scale, post=post_options(body))


def t2i_to_request(body: T2IRequest, model_id: str) -> GenerationRequest:
    scheduler = body.scheduler or SCHEDULERS[body.version][0]
    # prior_num_inference_steps / prior_guidance_scale drive the prior of an unCLIP (Karlo) model;
    # for SD and SDXL, which have none, they are validated and recorded.
    return GenerationRequest(
        model=model_id,
        task="txt2img",
        prompt=body.prompt,
        negative_prompt=body.negative_prompt or None,
        width=body.width,
        height=body.height,
        scheduler=SCHEDULER_MAP[scheduler],
        prior_steps=body.prior_num_inference_steps,
        prior_guidance_scale=body.prior_guidance_scale,
        **_common(body),
    )


def variations_to_request(body: VariationsRequest, model_id: str, family: str, max_pixels: int) -> GenerationRequest:
    common = _common(body)
    image = decode_base64_image(body.image, field="image", max_bytes=MAX_IMAGE_BYTES, max_pixels=max_pixels,
                                formats=INPUT_FORMATS, max_side=VARIATION_MAX_SIDE).convert("RGB")
    if image.width != image.height:  # the spec: "Images of other ratios will be resized to a 1:1 ratio"
        side = max(image.size)
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    scheduler = SCHEDULER_MAP[body.scheduler or SCHEDULERS[body.version][0]]
    size = dict(width=body.width, height=body.height)
    if family == "unclip":  # the image embedding drives the decoder
        return GenerationRequest(model=model_id, task="variation", prompt="", init_image=image,
                                 scheduler=scheduler, **size, **common)
    image = image.resize((body.width, body.height), Image.Resampling.LANCZOS)
    return GenerationRequest(model=model_id, task="img2img", prompt="", init_image=image,
                             strength=VARIATION_STRENGTH, scheduler=scheduler, **size, **common)


def check_inpainting_model(body: InpaintingRequest, family: str, tasks: tuple[str, ...]) -> None:
    """Before any image is decoded: the model serving this version must inpaint."""
    if "inpaint" not in tasks:
        raise NotSupported(f"the model serving Karlo {body.version} ({family}) cannot inpaint")


def inpainting_to_request(body: InpaintingRequest, model_id: str, max_pixels: int) -> GenerationRequest:
    common = _common(body)
    formats = INPUT_FORMATS | HEIF_FORMATS
    limits = dict(max_bytes=MAX_IMAGE_BYTES, max_pixels=max_pixels, formats=formats, max_side=INPAINT_MAX_SIDE)
    image = decode_base64_image(body.image, field="image", **limits).convert("RGB")
    mask = decode_base64_image(body.mask, field="mask", **limits)
    if mask.size != image.size:
        raise InvalidRequest(f"must be the same size as image ({image.width}x{image.height}), "
                             f"got {mask.width}x{mask.height}", field="mask")
    # Karlo: black (0) marks the area to regenerate. Internally (diffusers): white = repaint.
    # Anything darker than mid-grey counts as black, so JPEG noise around 0 still selects.
    repaint = mask.convert("L").point(lambda v: 255 if v < 128 else 0)
    if repaint.getbbox() is None:
        raise InvalidRequest("marks no area to edit (no black pixels)", field="mask")
    width, height = image.width // 8 * 8, image.height // 8 * 8  # the model works on multiples of 8
    if width < 64 or height < 64:
        raise InvalidRequest(f"must be at least 64x64 pixels, got {image.width}x{image.height}", field="image")
    image, repaint = image.crop((0, 0, width, height)), repaint.crop((0, 0, width, height))
    strength = 1.0
    reference = None
    if body.reference_image is not None:
        reference = decode_base64_image(body.reference_image, field="reference_image", **limits).convert("RGB")
        reference = reference.resize((width, height), Image.Resampling.LANCZOS)
        image_for_model = Image.composite(reference, image, repaint)
        strength = REFERENCE_STRENGTH
    else:
        image_for_model = image
    return GenerationRequest(
        model=model_id, task="inpaint", prompt=body.prompt, negative_prompt=body.negative_prompt or None,
        width=width, height=height, init_image=image_for_model, mask_image=repaint, strength=strength,
        reference_image=reference, prior_steps=body.prior_num_inference_steps,
        prior_guidance_scale=body.prior_guidance_scale, **common,
    )


def output_options(body: AnyRequest) -> OutputOptions:
    return OutputOptions(format=body.image_format, quality=body.image_quality)


def image_value(body: AnyRequest, url_of: Callable) -> Callable:
    """What ``image`` holds per ``return_type``: ``url_of(served_image)``, or the image's base64."""
    if body.return_type == "url":
        return url_of
    return lambda im: base64.b64encode(im.data).decode("ascii")


def result_to_wire(body: AnyRequest, result: ServiceResult, image_value: Callable,
                   nsfw_threshold: float = 0.5) -> dict:
    """``image_value(served_image)`` gives the base64 string or the signed URL."""
    return {
        "id": result.job_id,
        "model_version": body.version,
        "images": [
            {
                "id": im.id,
                "seed": im.seed,
                "image": image_value(im),
                # null when the checker is unused (spec)
                "nsfw_content_detected": None if im.nsfw_score is None else im.nsfw_score >= nsfw_threshold,
                "nsfw_score": im.nsfw_score,
            }
            for im in result.images
        ],
    }
