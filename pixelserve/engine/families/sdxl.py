"""Stable Diffusion XL: txt2img, img2img, inpainting, with an optional refiner."""

from __future__ import annotations

import threading
from typing import Any

import torch

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import PromptLists, StepCallback
from pixelserve.engine.families.sd import SDFamily

#: Fraction of the denoising done by the base model when a refiner finishes the job
#: (the split diffusers documents as "ensemble of expert denoisers").
REFINER_SWITCH = 0.8


class SDXLFamily(SDFamily):
    name = "sdxl"
    task_pipelines = {
        "txt2img": "StableDiffusionXLPipeline",
        "img2img": "StableDiffusionXLImg2ImgPipeline",
        "inpaint": "StableDiffusionXLInpaintPipeline",
    }
    refiner_pipeline = "StableDiffusionXLImg2ImgPipeline"

    def run(self, model: Any, request: GenerationRequest, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None, prompts: PromptLists | None = None) -> list[Any]:
        if model.refiner is None or request.use_refiner is False:
            return super().run(model, request, on_step, cancel, prompts)  # the base model alone, as SD
        # 1. A per-call pipeline for the task, with its own scheduler.
        pipe = self.task_pipeline(model.pipe, request.task, request.scheduler)
        # 2. One generator per seed.
        generators = self.generators(request.seeds, model.device)
        n = len(generators)
        total = self.effective_steps(request)
        positive, negative = self.prompt_lists(request, n, prompts)
        common = dict(
            prompt=positive,
            negative_prompt=negative,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            generator=generators,
        )
        with torch.inference_mode():
            # 3. The base model denoises the first part and hands its latents over.
            latents = pipe(
                denoising_end=REFINER_SWITCH, output_type="latent",
                callback_on_step_end=self.step_callback(total, on_step, cancel),
                **common, **self.task_kwargs(request),
            ).images
            # 4. The refiner finishes the remaining steps.
            refiner = self.task_pipeline(model.refiner, "img2img", request.scheduler)
            out = refiner(
                image=latents, denoising_start=REFINER_SWITCH,
                callback_on_step_end=self.step_callback(total, on_step, cancel, offset=int(total * REFINER_SWITCH)),
                **common,
            )
        # 5. PIL images, one per seed (inpainting: unmasked pixels kept as sent).
        return self.keep_unmasked(request, list(out.images))
