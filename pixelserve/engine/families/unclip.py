"""unCLIP (Kakao Brain's Karlo): text -> prior -> image embedding -> decoder -> super-resolution.

Tasks: ``txt2img`` (diffusers' ``UnCLIPPipeline``) and ``variation`` (``UnCLIPImageVariationPipeline``:
the CLIP image embedding of ``request.init_image`` takes the prior's place and drives the decoder).

Model folder (a diffusers folder only; single-file checkpoints do not exist for unCLIP)::

    karlo/
      model_index.json        UnCLIPPipeline, as kakaobrain/karlo-v1-alpha ships it
      prior/ text_encoder/ tokenizer/ text_proj/ decoder/ super_res_first/ super_res_last/
      prior_scheduler/ decoder_scheduler/ super_res_scheduler/
      image_encoder/          CLIPVisionModelWithProjection (variations; Karlo: clip-vit-large-patch14)
      feature_extractor/      CLIPImageProcessor config

``image_encoder/`` and ``feature_extractor/`` are not in ``model_index.json``: they are what
diffusers' ``convert_unclip_txt2img_to_image_variation.py`` adds to the txt2img components. They
are loaded once as the model's extras; the variation pipeline of each call is built around the
very modules of the txt2img pipeline, so the decoder and super-resolution weights exist once.

Behaviour worth knowing:

- Steps: the prior runs ``request.prior_steps`` (default 25, guidance ``prior_guidance_scale``,
  default 4.0), the decoder ``request.steps`` (guidance ``guidance_scale``), the super-resolution
  a fixed ``SUPER_RES_STEPS`` (7, diffusers' default; it is not guided). ``UnCLIPScheduler``
  cannot run a single step, so a stage it drives runs at least 2.
- Samplers (the decoder only; prior and super-resolution keep their own ``UnCLIPScheduler``):
  ``None`` keeps the model's decoder scheduler, ``"ddim"`` / ``"ddpm"`` (Karlo's
  ``decoder_ddim_v_prediction`` / ``decoder_ddpm_v_prediction``) pick the class, built with
  ``from_config`` keeping the model's own ``prediction_type``. Other names raise NotSupported.
- Progress: every denoising step of the three stages is reported, against an exact total
  (prior + decoder + super-resolution steps); a cancel stops the job after the current step.
  The unCLIP pipelines have no step callback: each call's fresh schedulers report from ``step``,
  with the step's estimate of the finished sample (pixels: the decoder's and super-resolution's
  samples are images) for live previews.
- Size: unCLIP draws one fixed size (the super-resolution UNet's ``sample_size``: 256 for Karlo);
  images are resized to ``request.width`` x ``request.height`` with LANCZOS when that differs.
- ``negative_prompt`` (txt2img) replaces the empty prompt of classifier-free guidance.
"""

from __future__ import annotations

import inspect
import itertools
import json
import threading
from pathlib import Path
from typing import Any, Callable

import torch

from pixelserve.core.model_config import FAMILY_SCHEDULERS
from pixelserve.core.request import GenerationRequest
from pixelserve.core.samplers import SAMPLERS
from pixelserve.engine.families.base import Family, PreviewHook, StepCallback
from pixelserve.engine.families.schedulers import make_scheduler
from pixelserve.engine.weights.formats import WeightsFormatError, check_diffusers_folder_is_safetensors, detect_format
from pixelserve.engine.weights.tokenizers import is_tokenizer, shared_tokenizer
from pixelserve.errors import InvalidRequest, NotSupported

PRIOR_STEPS = 25
PRIOR_GUIDANCE_SCALE = 4.0
#: Super-resolution steps: diffusers' default for Karlo, fixed (no request field asks for it).
SUPER_RES_STEPS = 7
#: UnCLIPScheduler spaces its timesteps by (T - 1) / (steps - 1): it needs two steps at least.
MIN_UNCLIP_STEPS = 2
#: What a variation needs besides the txt2img components (subfolders of the model folder).
VARIATION_PARTS = ("image_encoder", "feature_extractor")
_SCHEDULER_NAMES = ("prior_scheduler", "decoder_scheduler", "super_res_scheduler")


class UnCLIPFamily(Family):
    name = "unclip"
    task_pipelines = {"txt2img": "UnCLIPPipeline", "variation": "UnCLIPImageVariationPipeline"}

    # -- loading ---------------------------------------------------------------------------
    def load(self, path: Any, dtype: Any, cache_dir: Any, *, config_dir: Any = None) -> tuple[Any, dict[str, Any]]:
        """The UnCLIPPipeline of the folder, and its image encoder + feature extractor as extras.

        Components are loaded one by one: Karlo's ``model_index.json`` names the text projection
        ``["unclip", "UnCLIPTextProjModel"]``, a pipeline module diffusers has since moved under
        ``pipelines.deprecated``, so ``UnCLIPPipeline.from_pretrained`` no longer finds it.
        """
        path = Path(path)
        if detect_format(path) != "diffusers":
            raise WeightsFormatError(
                f"{path}: unclip models load from a diffusers folder only (UnCLIPPipeline + image_encoder/ + "
                "feature_extractor/); no single-file checkpoint format holds the prior, decoder and "
                "super-resolution models")
        check_diffusers_folder_is_safetensors(path)
        index = json.loads((path / "model_index.json").read_text())
        cls = self.pipeline_class()
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        missing = [n for n in names if not isinstance(index.get(n), list)] + [
            p for p in VARIATION_PARTS if not (path / p).is_dir()]
        if index.get("_class_name") != cls.__name__ or missing:
            raise WeightsFormatError(
                f"{path} is not an unclip model folder: it needs a {cls.__name__} model_index.json with "
                f"{', '.join(names)}, and the image_encoder/ (CLIPVisionModelWithProjection, safetensors) and "
                f"feature_extractor/ (CLIPImageProcessor) subfolders variations use; missing: {', '.join(missing)}")
        components = {n: _load_component(path / n, *index[n], dtype) for n in names}
        extras = {
            "image_encoder": _load_component(path / "image_encoder", "transformers", "CLIPVisionModelWithProjection", dtype),
            "feature_extractor": _load_component(path / "feature_extractor", "transformers", "CLIPImageProcessor", dtype),
        }
        return cls(**components), extras

    # -- one generation --------------------------------------------------------------------
    def run(self, model: Any, request: GenerationRequest, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None, preview: PreviewHook | None = None) -> list[Any]:
        if request.task not in self.task_pipelines:
            raise NotSupported(f"unclip models cannot do {request.task}", field="task")
        if request.task == "variation" and request.init_image is None:
            raise InvalidRequest("a variation needs an input image", field="image")
        # 1. Fresh schedulers for this call (the decoder's picked by request.scheduler).
        schedulers = self.schedulers(model.pipe, request.scheduler)
        # 2. Steps per stage and their exact total (the prior runs for txt2img only).
        steps = self.stage_steps(request, schedulers)
        total = sum(steps.values())
        # 3. Each scheduler step reports progress and stops the job when cancelled.
        callback = self.step_callback(total, on_step, cancel, preview=preview)
        counter = itertools.count()
        for scheduler in schedulers.values():
            _report_each_step(scheduler, lambda sample: callback(None, next(counter), None, {"latents": sample}))
        # 4. A per-call pipeline around the loaded modules (variation: plus the image encoder).
        pipe = self.call_pipeline(model, request.task, schedulers)
        # 5. One generator per seed.
        generators = self.generators(request.seeds, model.device)
        n = len(generators)
        # 6. Prior (txt2img) -> decoder -> super-resolution.
        common = dict(
            decoder_num_inference_steps=steps["decoder_scheduler"],
            super_res_num_inference_steps=steps["super_res_scheduler"],
            decoder_guidance_scale=request.guidance_scale, generator=generators,
        )
        with torch.inference_mode():
            if request.task == "variation":
                out = pipe(image=request.init_image.convert("RGB"), num_images_per_prompt=n, **common)
            else:
                if request.negative_prompt:
                    _use_negative_prompt(pipe, request.negative_prompt)
                guidance = request.prior_guidance_scale
                out = pipe(
                    prompt=[request.prompt] * n, prior_num_inference_steps=steps["prior_scheduler"],
                    prior_guidance_scale=PRIOR_GUIDANCE_SCALE if guidance is None else guidance, **common,
                )
        # 7. PIL images, one per seed, at the requested size.
        return [self.resize(im, request.width, request.height) for im in out.images]

    # -- the steps' helpers ----------------------------------------------------------------
    @staticmethod
    def schedulers(base: Any, name: str | None) -> dict[str, Any]:
        """New prior / decoder / super-resolution schedulers; only the decoder's follows ``name``."""
        out = {key: make_scheduler(None, getattr(base, key).config) for key in _SCHEDULER_NAMES}
        if name is not None:
            allowed = FAMILY_SCHEDULERS["unclip"]
            if name not in allowed:
                raise NotSupported(f"unclip models sample with {' or '.join(allowed)}, not {name!r}", field="scheduler")
            import diffusers

            config = base.decoder_scheduler.config
            cls_name, overrides = SAMPLERS[name]
            # Keep the decoder's own prediction type: forcing another draws noise.
            out["decoder_scheduler"] = getattr(diffusers, cls_name).from_config(
                config, **overrides, prediction_type=config["prediction_type"])
        return out

    @staticmethod
    def stage_steps(request: GenerationRequest, schedulers: dict[str, Any]) -> dict[str, int]:
        wanted = {
            "prior_scheduler": PRIOR_STEPS if request.prior_steps is None else request.prior_steps,
            "decoder_scheduler": request.steps,
            "super_res_scheduler": SUPER_RES_STEPS,
        }
        if request.task == "variation":
            del wanted["prior_scheduler"]
        return {key: max(MIN_UNCLIP_STEPS, n) if type(schedulers[key]).__name__ == "UnCLIPScheduler" else n
                for key, n in wanted.items()}

    def call_pipeline(self, model: Any, task: str, schedulers: dict[str, Any]) -> Any:
        """The task's pipeline for one call, sharing every loaded module (no weight copies)."""
        import diffusers

        cls = getattr(diffusers, self.task_pipelines[task])
        components = {**model.pipe.components, **model.extras, **schedulers}
        params = set(inspect.signature(cls.__init__).parameters)
        pipe = cls(**{k: v for k, v in components.items() if k in params})
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @staticmethod
    def resize(image: Any, width: int, height: int) -> Any:
        if image.size == (width, height):
            return image
        from PIL import Image

        return image.resize((width, height), Image.Resampling.LANCZOS)


def _load_component(folder: Path, library: str, class_name: str, dtype: Any) -> Any:
    """One component, offline: models from safetensors only, schedulers and processors from their configs."""
    import diffusers
    import transformers
    from diffusers.pipelines.deprecated import unclip

    modules = {"diffusers": (diffusers, unclip), "unclip": (unclip,), "transformers": (transformers,)}.get(library, ())
    cls = next((getattr(m, class_name) for m in modules if hasattr(m, class_name)), None)
    if cls is None:
        raise WeightsFormatError(f"{folder}: {library}.{class_name} is not a component of an unclip model")
    if issubclass(cls, diffusers.SchedulerMixin):
        return cls.from_config(cls.load_config(folder))
    if issubclass(cls, (diffusers.ModelMixin, transformers.PreTrainedModel)):
        if not any(folder.glob("*.safetensors")):
            raise WeightsFormatError(f"{folder} has no safetensors weights (pickle is never loaded)")
        return cls.from_pretrained(folder, dtype=dtype, local_files_only=True, use_safetensors=True).eval()
    if is_tokenizer(cls):
        return shared_tokenizer(folder, cls)  # loaded once per process (engine/weights/tokenizers.py)
    return cls.from_pretrained(folder, local_files_only=True)  # image processor


def _report_each_step(scheduler: Any, after_step: Callable[[Any], None]) -> None:
    """Make ``scheduler.step`` (one per denoising step) call ``after_step(estimate)``, on this instance only:
    the step's estimate of the finished sample where the sampler gives one, else its new sample.

    The unCLIP pipelines call ``step(output, t, sample, prev_timestep=..., generator=...)``, which
    only UnCLIPScheduler accepts; for DDIM / DDPM the arguments they lack are dropped, and the
    decoder's learned-variance half is dropped for a sampler that does not read it (DDIM).
    """
    step = scheduler.step
    accepted = set(inspect.signature(step).parameters)
    # from_config keeps keys a class does not take in its config: ask the constructor instead.
    reads_variance = ("variance_type" in inspect.signature(type(scheduler).__init__).parameters
                      and scheduler.config.variance_type in ("learned", "learned_range"))

    def reporting_step(model_output, timestep, sample, *args, **kwargs):
        if not reads_variance and model_output.ndim == 4 and model_output.shape[1] == 2 * sample.shape[1]:
            model_output = model_output[:, : sample.shape[1]]
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        out = step(model_output, timestep, sample, *args, **kwargs)
        if isinstance(out, tuple):
            after_step(out[0])
        else:
            estimate = getattr(out, "pred_original_sample", None)
            after_step(out.prev_sample if estimate is None else estimate)
        return out

    scheduler.step = reporting_step


def _use_negative_prompt(pipe: Any, negative_prompt: str) -> None:
    """Classifier-free guidance against ``negative_prompt`` instead of the empty prompt (this call's pipe only)."""
    encode = pipe._encode_prompt

    def encode_prompt(prompt, device, num_images_per_prompt, do_classifier_free_guidance, *args):
        cond = encode(prompt, device, num_images_per_prompt, False, *args)
        if not do_classifier_free_guidance:
            return cond
        uncond = encode([negative_prompt] * len(prompt), device, num_images_per_prompt, False)
        return tuple(torch.cat([u, c]) for u, c in zip(uncond, cond))

    pipe._encode_prompt = encode_prompt
