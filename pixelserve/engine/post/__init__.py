"""Post-processing of generated images, in order: face refinement, upscale, NSFW scoring."""

from __future__ import annotations

import math
import threading
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import Family


def apply(model: Any, family: Family, request: GenerationRequest, images: list[Any],
          cancel: threading.Event | None = None, nsfw: bool = True) -> tuple[list[Any], list[float] | None]:
    """Returns the processed images and one NSFW score per image (None unless asked for).

    ``nsfw=False``: the caller scores them itself (the engine does, off the device thread).
    """
    post = request.post
    if post.face_refine is not None:
        from pixelserve.engine.post import face_refine

        images = [face_refine.refine(model, family, request, im, seed, cancel)
                  for im, seed in zip(images, request.seeds)]
    if post.upscale:
        from pixelserve.engine.post import upscale

        images = [upscale.upscale(model, family, request, im, seed, cancel)
                  for im, seed in zip(images, request.seeds)]
    scores = nsfw_scores(images) if post.nsfw_check and nsfw else None
    return images, scores


def nsfw_scores(images: list[Any]) -> list[float]:
    from pixelserve.engine.post import safety

    return [safety.nsfw_score(im) for im in images]


def img2img(model: Any, family: Family, request: GenerationRequest, image: Any, seed: int, strength: float,
            cancel: threading.Event | None) -> Any:
    """One img2img pass of ``image`` with the request's model, prompt and sampler (the detail passes)."""
    import torch

    pipe = family.task_pipeline(model.pipe, "img2img", request.scheduler)
    # img2img runs int(steps * strength) steps: at least one, even for a short request.
    steps = max(request.steps, math.ceil(1 / strength))
    with torch.inference_mode():
        out = pipe(
            prompt=request.prompt, negative_prompt=request.negative_prompt or "", image=image,
            strength=strength, num_inference_steps=steps, guidance_scale=request.guidance_scale,
            generator=family.generators((seed,), model.device),
            callback_on_step_end=family.step_callback(1, None, cancel),
        )
    return out.images[0]
