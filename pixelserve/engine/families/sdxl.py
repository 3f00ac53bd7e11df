"""Stable Diffusion XL: txt2img, img2img, inpainting, with an optional refiner; everything SD has."""

from __future__ import annotations

import threading
from typing import Any

import torch

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.adapters import controlnet, image_prompt, lora
from pixelserve.engine.families.tiling import circular
from pixelserve.engine.families.variation import pipeline_kwargs as variation_kwargs
from pixelserve.engine.families.base import PreviewHook, PromptLists, StepCallback
from pixelserve.engine.families.sd import SDFamily
from pixelserve.engine.text.prompts import refiner_texts

#: Fraction of the denoising done by the base model when a refiner finishes the job and the
#: request names no ``high_noise_frac`` (the split diffusers documents as "ensemble of expert denoisers").
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
            cancel: threading.Event | None = None, prompts: PromptLists | None = None,
            preview: PreviewHook | None = None) -> list[Any]:
        if model.refiner is None or request.use_refiner is False:
            return super().run(model, request, on_step, cancel, prompts, preview)  # the base model alone, as SD
        switch = REFINER_SWITCH if request.high_noise_frac is None else float(request.high_noise_frac)
        # 1. This call's base with exactly its LoRAs active (and its IP-Adapter, for an image prompt).
        with lora.applied(model, request.checkpoint, request.loras) as (base, adapter_key), \
                image_prompt.applied(model, base, request) as (image_parts, image_kwargs):
            # 2. A per-call pipeline for the task, with its own scheduler, VAE and ControlNet.
            pipe = self.call_pipeline(model, base, request, image_parts)
            # 3. One generator per seed.
            generators = self.generators(request.seeds, model.device)
            total = self.effective_steps(request)
            texts = self.prompt_lists(request, len(generators), prompts)
            common = dict(num_inference_steps=request.steps, guidance_scale=request.guidance_scale,
                          generator=generators)
            with torch.inference_mode(), circular([pipe.unet, pipe.vae, model.refiner.unet], request.tiling):
                # 4. The base model denoises the first part and hands its latents over.
                latents = pipe(
                    denoising_end=switch, output_type="latent",
                    callback_on_step_end=self.step_callback(total, on_step, cancel, preview=preview),
                    **self.text_kwargs(base, request, texts, adapter_key), **common,
                    **self.task_kwargs(request), **controlnet.pipeline_kwargs(request), **image_kwargs,
                    **variation_kwargs(pipe, request, model.device),
                    **({"eta": request.eta} if request.eta is not None else {}),
                ).images
                # 5. The refiner finishes the remaining steps (its own text encoder: the *_2 texts, plain).
                refiner = self.task_pipeline(model.refiner, "img2img", request.scheduler)
                extra = {"clip_skip": request.clip_skip} if request.clip_skip else {}
                out = refiner(
                    image=latents, denoising_start=switch,
                    callback_on_step_end=self.step_callback(total, on_step, cancel, offset=int(total * switch),
                                                            preview=preview),
                    **refiner_texts(request, texts), **extra, **common,
                )
        # 6. PIL images, one per seed (inpainting: unmasked pixels kept as sent).
        return self.keep_unmasked(request, list(out.images))
