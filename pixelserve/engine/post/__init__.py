"""Post-processing of generated images, in order: face refinement, upscale, NSFW scoring; and the
answers' encoding where the engine does it (encode_answers)."""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import Executor
from typing import Any

from pixelserve.core.images import encode_image
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


async def encode_answers(requests: list[GenerationRequest], outputs: list, pool: Executor,
                         loop: asyncio.AbstractEventLoop) -> list[list[bytes] | None]:
    """The images of each request that asks for it (post.encode) encoded on ``pool``, all at once;
    None for the others and for failed outputs (an Exception in ``outputs``).

    The local engine calls this on a CPU device before it takes the next batch. There denoising and
    encoding share the same cores: encoded here, on all of them, the answers leave first; left to
    the service, each answer's encode queued behind the next batch's denoising threads (a 32-client
    burst measured its "store" stage at 35-40 ms p50). The cores do the same work either way.
    """
    wanted = [(i, image, r.post.encode) for i, (r, out) in enumerate(zip(requests, outputs))
              if r.post.encode is not None and not isinstance(out, Exception) for image in out]
    encoded: list[list[bytes] | None] = [None] * len(requests)
    data = await asyncio.gather(*(loop.run_in_executor(pool, encode_image, image, fmt, quality)
                                  for _, image, (fmt, quality) in wanted))
    for (i, _, _), d in zip(wanted, data):
        encoded[i] = (encoded[i] or []) + [d]
    return encoded
