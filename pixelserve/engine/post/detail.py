"""The img2img detail pass that upscale and face refinement share: the request's model, prompt and
sampler over an existing image."""

from __future__ import annotations

import math
import threading
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import Family


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
