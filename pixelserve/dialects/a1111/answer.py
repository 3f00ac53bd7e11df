"""A1111 answers: the result as ``{images, parameters, info}`` with the infotext in each image file
(translate.py builds the request; this, the answer). Pure functions."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from pixelserve.dialects.a1111 import hires, images, infotext
from pixelserve.dialects.a1111.protocol import Img2ImgRequest, Processing
from pixelserve.dialects.a1111.translate import FACE_RESTORER, JPEG_QUALITY, VERSION, Plan, Target
from pixelserve.service.pipeline import ServiceResult


def infotext_params(plan: Plan, target: Target, seed: int, subseed: int | None = None) -> dict[str, Any]:
    body = plan.body
    params: dict[str, Any] = {
        "Steps": body.steps, "Sampler": plan.sampler.label, "Schedule type": plan.sampler.schedule,
        "CFG scale": infotext.number(body.cfg_scale), "Seed": seed, "Size": f"{body.width}x{body.height}",
        "Face restoration": FACE_RESTORER if body.restore_faces else None,
        "Model hash": target.hash, "Model": target.title,
        "Variation seed": subseed, "Variation seed strength": infotext.number(body.subseed_strength) if subseed is not
        None else None,
        "Denoising strength": infotext.number(body.denoising_strength) if plan.kind == "img2img" else None,
        "Clip skip": plan.clip_skip if plan.clip_skip > 1 else None,
        "Mask blur": None,
        "Eta DDIM": plan.request.eta if plan.request.eta else None,
        "Seed resize from": "{}x{}".format(*plan.request.seed_resize_from) if plan.request.seed_resize_from else None,
        "Tiling": True if body.tiling else None,
        "Refiner": body.refiner_checkpoint if plan.request.use_refiner else None,
        "Refiner switch at": plan.request.high_noise_frac if plan.request.use_refiner else None,
        **hires.infotext_params(body),
        "Version": VERSION,
    }
    if isinstance(body, Img2ImgRequest) and body.mask:
        params["Mask blur"] = body.mask_blur if body.mask_blur is not None else body.mask_blur_x
    return params


def info(plan: Plan, target: Target, result_seeds: list[int], texts: list[str]) -> dict[str, Any]:
    """The ``info`` object (``Processed.js()``), before json.dumps."""
    body = plan.body
    n = len(result_seeds)
    return {
        "prompt": plan.prompt, "all_prompts": [plan.prompt] * n, "negative_prompt": plan.negative,
        "all_negative_prompts": [plan.negative] * n, "seed": plan.seed, "all_seeds": result_seeds,
        "subseed": plan.subseed, "all_subseeds": list(plan.subseeds or [plan.subseed] * n),
        "subseed_strength": body.subseed_strength, "width": body.width, "height": body.height,
        "sampler_name": plan.sampler.label, "cfg_scale": body.cfg_scale, "steps": body.steps,
        "batch_size": body.batch_size, "restore_faces": bool(body.restore_faces),
        "face_restoration_model": FACE_RESTORER if body.restore_faces else None,
        "sd_model_name": target.title, "sd_model_hash": target.hash, "sd_vae_name": None, "sd_vae_hash": None,
        "seed_resize_from_w": body.seed_resize_from_w, "seed_resize_from_h": body.seed_resize_from_h,
        "denoising_strength": body.denoising_strength, "extra_generation_params": {},
        "index_of_first_image": 0, "infotexts": texts, "styles": body.styles or [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "clip_skip": plan.clip_skip,
        "is_using_inpainting_conditioning": False, "version": VERSION,
    }


def encoded(data: bytes, fmt: str, text: str) -> bytes:
    """The answered image file: the service's PNG with the infotext, or a JPEG/WebP with it in EXIF."""
    if fmt == "png":
        return images.png_with_text(data, "parameters", text)
    return images.with_exif_comment(data, fmt, text, JPEG_QUALITY)


def parameters(body: Processing) -> dict[str, Any]:
    """The request echoed (``parameters``): every field with its value; img2img's images only when
    ``include_init_images`` (A1111 sets them to None otherwise)."""
    out = body.model_dump()
    if isinstance(body, Img2ImgRequest) and not body.include_init_images:
        out["init_images"], out["mask"] = None, None
    return out


def result_to_wire(plan: Plan, target: Target, result: ServiceResult) -> dict[str, Any]:
    seeds_ = [im.seed for im in result.images]
    subs = list(plan.subseeds or [None] * len(seeds_))
    texts = [infotext.create(plan.prompt, plan.negative, infotext_params(plan, target, s, sub))
             for s, sub in zip(seeds_, subs)]
    files = [encoded(im.data, plan.fmt, t) for im, t in zip(result.images, texts)] if plan.body.send_images else []
    return {"images": [base64.b64encode(f).decode("ascii") for f in files], "parameters": parameters(plan.body),
            "info": json.dumps(info(plan, target, seeds_, texts))}
