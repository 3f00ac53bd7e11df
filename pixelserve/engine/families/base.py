"""What every diffusers-backed family shares: per-call pipelines, seeds, progress, cancellation."""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.inpaint import pipeline_kwargs as inpaint_kwargs
from pixelserve.engine.families.schedulers import make_scheduler
from pixelserve.engine.text.prompts import PromptLists
from pixelserve.engine.weights.loading import load_pipeline


class JobCancelled(Exception):
    """Raised from the step callback to stop a pipeline between two denoising steps."""


StepCallback = Callable[[int, int], None]
#: ``preview(step, latents, scheduler)``: called before ``on_step`` on every step with the batch's latents
#: and the call's scheduler (None where there is none to read); engine/post/previews.JobPreviews.latents.
PreviewHook = Callable[[int, Any, Any], None]


class Family:
    name = ""
    #: task -> diffusers pipeline class name
    task_pipelines: dict[str, str] = {}
    refiner_pipeline: str | None = None

    def pipeline_class(self) -> Any:
        import diffusers

        return getattr(diffusers, self.task_pipelines["txt2img"])

    def load(self, path: Any, dtype: Any, cache_dir: Any, *, config_dir: Any = None) -> tuple[Any, dict[str, Any]]:
        """The base pipeline from ``path``, and extra modules the family's task pipelines share.

        Default: the txt2img pipeline through the weights loader (diffusers folder or one
        safetensors file) and no extras. Extras (unclip: the image encoder) go to the device with it.
        """
        pipe = load_pipeline(self.pipeline_class(), path, self.name, dtype, cache_dir, config_dir=config_dir)
        return pipe, {}

    def refiner_class(self) -> Any:
        import diffusers

        if self.refiner_pipeline is None:
            raise ValueError(f"family {self.name} has no refiner")
        return getattr(diffusers, self.refiner_pipeline)

    # -- helpers the families' run() steps use ---------------------------------------------
    def task_pipeline(self, base: Any, task: str, scheduler_name: str | None, *,
                      overrides: dict[str, Any] | None = None, pipeline: str | None = None) -> Any:
        """A new pipeline object for this call sharing the loaded components (no weight copies).

        Each call gets its own scheduler instance, so concurrent or queued jobs never race
        on scheduler state or on a globally swapped sampler. ``overrides`` replace or add
        components for this call only (a request's VAE, its ControlNet); ``pipeline`` names
        another diffusers class than the task's own (the ControlNet variants).
        """
        import diffusers

        cls = getattr(diffusers, pipeline or self.task_pipelines[task])
        components = dict(base.components)
        components.update(overrides or {})
        components["scheduler"] = make_scheduler(scheduler_name, base.scheduler.config)
        params = _init_params(cls)
        for name in params:  # init options kept in the pipeline config (refiner aesthetics score ...)
            if name not in components and name in base.config:
                components[name] = base.config[name]
        if "requires_safety_checker" in params:  # safety is pixelserve's post-processing step
            components["requires_safety_checker"] = False
        pipe = cls(**{k: v for k, v in components.items() if k in params})
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @staticmethod
    def generators(seeds: tuple[int, ...], device: str) -> list[torch.Generator]:
        # One generator per image: image i depends only on seeds[i], whatever the batch.
        gen_device = "cpu" if device == "mps" else device
        return [torch.Generator(gen_device).manual_seed(int(s)) for s in seeds]

    @staticmethod
    def step_callback(total: int, on_step: StepCallback | None, cancel: threading.Event | None, offset: int = 0,
                      preview: PreviewHook | None = None):
        def callback(pipe, step, timestep, callback_kwargs):
            if cancel is not None and cancel.is_set():
                raise JobCancelled()
            if preview is not None:
                preview(offset + step + 1, callback_kwargs.get("latents"), getattr(pipe, "scheduler", None))
            if on_step is not None:
                on_step(offset + step + 1, total)
            return callback_kwargs

        return callback

    def run(self, model: Any, request: GenerationRequest, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None, prompts: PromptLists | None = None,
            preview: PreviewHook | None = None) -> list[Any]:
        """Images for ``request``, one per seed. ``prompts``: per-image (prompts, negative prompts)
        replacing the request's own (run_many's stacked batch). ``preview``: see PreviewHook."""
        raise NotImplementedError

    #: True when run() honours ``prompts``, so that run_many can stack compatible requests.
    batchable = False

    def run_many(self, model: Any, requests: list[GenerationRequest], on_step: StepCallback | None = None,
                 cancel: threading.Event | None = None, preview: PreviewHook | None = None) -> list[list[Any]]:
        """Compatible requests (engine/batching.batch_key) in ONE pipeline call; images per request.

        Each image keeps its own prompt, negative prompt and seeded generator, so it is the image
        the request would get alone (up to float summation order in the batched kernels).
        """
        seeds = tuple(s for r in requests for s in r.seeds)
        merged = requests[0].with_(seeds=seeds, num_images=len(seeds))
        images = self.run(model, merged, on_step, cancel, prompts=PromptLists.of(requests), preview=preview)
        out, start = [], 0
        for r in requests:
            out.append(images[start:start + len(r.seeds)])
            start += len(r.seeds)
        return out

    @staticmethod
    def prompt_lists(request: GenerationRequest, n: int, prompts: PromptLists | None = None) -> PromptLists:
        if prompts is not None:
            return prompts
        return PromptLists.of([request.with_(seeds=(0,) * n)])

    @staticmethod
    def task_kwargs(request: GenerationRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if request.task in ("img2img", "inpaint"):
            kwargs["image"] = request.init_image
            if request.strength is not None:
                kwargs["strength"] = request.strength
        if request.task == "inpaint":
            kwargs["mask_image"] = request.mask_image
        if request.task in ("txt2img", "inpaint"):
            kwargs["width"], kwargs["height"] = request.width, request.height
        if request.task == "inpaint" and (request.inpaint_full_res or request.outpaint):
            kwargs.update(inpaint_kwargs(request))
        return kwargs

    @staticmethod
    def keep_unmasked(request: GenerationRequest, images: list[Any]) -> list[Any]:
        """Inpainting: pixels outside the mask come back exactly as they were sent.

        The VAE round trip alters every pixel slightly; pasting the generated pixels only where
        the mask is white keeps the rest of the input byte for byte.
        """
        if request.task != "inpaint":
            return images
        from PIL import Image

        original = request.init_image.convert("RGB")
        mask = request.mask_image.convert("L")
        return [Image.composite(im.convert("RGB"), original, mask) for im in images]

    @staticmethod
    def effective_steps(request: GenerationRequest) -> int:
        """Denoising steps actually run (img2img strength skips the first ones)."""
        if request.task == "inpaint" and request.outpaint:
            return request.steps  # outpainting repaints the new canvas at full strength
        if request.task in ("img2img", "inpaint") and request.strength is not None:
            return max(1, int(request.steps * request.strength))
        return request.steps


def _init_params(cls: Any) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)
