"""Stable Diffusion 1.x / 2.x: txt2img, img2img, inpainting; LoRAs, textual inversions, VAE and
checkpoint overrides, ControlNet (engine/adapters/, engine/text/prompts.py)."""

from __future__ import annotations

import threading
from typing import Any

import torch

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.adapters import controlnet, controlnet_config, image_prompt, lora, vae
from pixelserve.engine.families.schedule import TENSOR_INPUTS, PromptSwitch
from pixelserve.engine.families.tiling import circular
from pixelserve.engine.families.variation import pipeline_kwargs as variation_kwargs
from pixelserve.engine.families.base import Family, PreviewHook, PromptLists, StepCallback
from pixelserve.engine.text.prompts import pipeline_kwargs


class SDFamily(Family):
    name = "sd"
    task_pipelines = {
        "txt2img": "StableDiffusionPipeline",
        "img2img": "StableDiffusionImg2ImgPipeline",
        "inpaint": "StableDiffusionInpaintPipeline",
    }

    batchable = True

    def run(self, model: Any, request: GenerationRequest, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None, prompts: PromptLists | None = None,
            preview: PreviewHook | None = None) -> list[Any]:
        # 1. This call's base (the model, or the request's checkpoint) with exactly its LoRAs active
        #    (and its IP-Adapter, for an image prompt).
        with lora.applied(model, request.checkpoint, request.loras) as (base, adapter_key), \
                image_prompt.applied(model, base, request) as (image_parts, image_kwargs):
            # 2. A per-call pipeline for the task, with its own scheduler, VAE and ControlNet.
            pipe = self.call_pipeline(model, base, request, image_parts)
            # 3. One generator per seed.
            generators = self.generators(request.seeds, model.device)
            # 4. The prompts, as text or as embeddings (weighting, long prompts, textual inversions).
            texts = self.prompt_lists(request, len(generators), prompts)
            text = self.text_kwargs(base, request, texts, adapter_key)
            callback_kwargs: dict[str, Any] = {}
            if request.prompt_schedule:  # A1111 prompt editing: the embedding changes at given steps
                switch = PromptSwitch(request, texts, lambda t: self.text_kwargs(base, request, t, adapter_key), text)
                text = switch.first
                callback_kwargs["callback_on_step_end_tensor_inputs"] = TENSOR_INPUTS
            # 5. Denoise, reporting each step (with its latents, for previews) and stopping between steps when
            #    cancelled.
            total = self.effective_steps(request)
            callback = self.step_callback(total, on_step, cancel, preview=preview)
            with torch.inference_mode(), circular([pipe.unet, pipe.vae], request.tiling):
                out = pipe(
                    **text,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    generator=generators,
                    callback_on_step_end=switch.wrap(callback) if request.prompt_schedule else callback,
                    **callback_kwargs,
                    **self.task_kwargs(request),
                    **controlnet.pipeline_kwargs(request),
                    **variation_kwargs(pipe, request, model.device),
                    **({"eta": request.eta} if request.eta is not None else {}),
                    **image_kwargs,
                )
        # 6. PIL images, one per seed (inpainting: unmasked pixels kept as sent).
        return self.keep_unmasked(request, list(out.images))

    # -- the steps' helpers ----------------------------------------------------------------
    def call_pipeline(self, model: Any, base: Any, request: GenerationRequest,
                      extra: dict[str, Any] | None = None) -> Any:
        overrides: dict[str, Any] = dict(extra or {})
        if request.vae is not None:
            overrides["vae"] = vae.vae_for(model, request.vae)
        name = None
        if request.controlnet is not None:
            overrides["controlnet"] = controlnet.load(model, request.controlnet.path)
            name = controlnet_config.pipeline_name(self.name, request.task)
        return self.task_pipeline(base.pipe, request.task, request.scheduler, overrides=overrides, pipeline=name)

    def text_kwargs(self, base: Any, request: GenerationRequest, texts: PromptLists, adapter_key: tuple) -> dict:
        return pipeline_kwargs(base, self.name, request, texts, adapter_key)
