"""Stable Diffusion 1.x / 2.x: txt2img, img2img, inpainting."""

from __future__ import annotations

import threading
from typing import Any

import torch

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import Family, PromptLists, StepCallback


class SDFamily(Family):
    name = "sd"
    task_pipelines = {
        "txt2img": "StableDiffusionPipeline",
        "img2img": "StableDiffusionImg2ImgPipeline",
        "inpaint": "StableDiffusionInpaintPipeline",
    }

    batchable = True

    def run(self, model: Any, request: GenerationRequest, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None, prompts: PromptLists | None = None) -> list[Any]:
        # 1. A per-call pipeline for the task, with its own scheduler.
        pipe = self.task_pipeline(model.pipe, request.task, request.scheduler)
        # 2. One generator per seed.
        generators = self.generators(request.seeds, model.device)
        # 3. Denoise, reporting each step and stopping between steps when cancelled.
        total = self.effective_steps(request)
        positive, negative = self.prompt_lists(request, len(generators), prompts)
        with torch.inference_mode():
            out = pipe(
                prompt=positive,
                negative_prompt=negative,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance_scale,
                generator=generators,
                callback_on_step_end=self.step_callback(total, on_step, cancel),
                **self.task_kwargs(request),
            )
        # 4. PIL images, one per seed (inpainting: unmasked pixels kept as sent).
        return self.keep_unmasked(request, list(out.images))
