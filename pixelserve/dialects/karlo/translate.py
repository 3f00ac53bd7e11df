"""Karlo wire <-> internal request/result. Pure functions, covered by golden-JSON tests."""

from __future__ import annotations

from typing import Callable

from pixelserve.core.request import GenerationRequest
from pixelserve.dialects.karlo.protocol import SCHEDULERS, T2IRequest
from pixelserve.errors import NotSupported
from pixelserve.service.generation import OutputOptions, ServiceResult

# Karlo's decoder schedulers are named for its v-prediction decoder. pixelserve keeps the served
# model's own prediction type (forcing v-prediction on an epsilon model draws garbage) and picks
# the matching sampler.
SCHEDULER_MAP = {"decoder_ddim_v_prediction": "ddim", "decoder_ddpm_v_prediction": "ddpm"}


def unsupported_features(body: T2IRequest) -> None:
    """Features of the spec this server does not implement yet: a clear error, never a no-op."""
    if body.upscale:
        raise NotSupported("is not supported by this server yet", field="upscale")
    if body.nsfw_checker:
        raise NotSupported("is not supported by this server yet", field="nsfw_checker")
    if body.face_refiner is not None:
        raise NotSupported("is not supported by this server yet", field="face_refiner")


def t2i_to_request(body: T2IRequest, model_id: str) -> GenerationRequest:
    unsupported_features(body)
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
        num_images=body.samples,
        seeds=tuple(body.seed) if body.seed is not None else None,
        steps=body.num_inference_steps,
        guidance_scale=body.guidance_scale,
        scheduler=SCHEDULER_MAP[scheduler],
        prior_steps=body.prior_num_inference_steps,
        prior_guidance_scale=body.prior_guidance_scale,
    )


def output_options(body: T2IRequest) -> OutputOptions:
    return OutputOptions(format=body.image_format, quality=body.image_quality)


def result_to_wire(body: T2IRequest, result: ServiceResult, image_value: Callable) -> dict:
    """``image_value(served_image)`` gives the base64 string or the signed URL."""
    return {
        "id": result.job_id,
        "model_version": body.version,
        "images": [
            {
                "id": im.id,
                "seed": im.seed,
                "image": image_value(im),
                "nsfw_content_detected": None,  # null when the checker is unused (spec)
                "nsfw_score": None,
            }
            for im in result.images
        ],
    }
