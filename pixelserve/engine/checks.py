"""Model-aware request checks run before anything is recorded or charged (``EngineClient.check``).

Quick (no denoising, no weights loaded): adapter files exist and are safetensors by content, a
checkpoint or ControlNet is of the model's family, the features the family cannot run are refused
(NotSupported, 501), weighted prompts are within the family's token limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import GenerationRequest
from pixelserve.core.request import PREPROCESSORS
from pixelserve.engine.adapters import controlnet_config
from pixelserve.engine.text.weighting import check_token_limits
from pixelserve.engine.weights.formats import WeightsFormatError, detect_format, tensor_names
from pixelserve.errors import InvalidRequest, NotFound, NotSupported

#: diffusers pipeline class of a checkpoint folder, per family.
PIPELINE_CLASSES = {"sd": ("StableDiffusionPipeline",), "sdxl": ("StableDiffusionXLPipeline",)}
#: Families that take LoRAs, textual inversions, overrides, ControlNet and the OctoAI text options.
ADAPTER_FAMILIES = ("sd", "sdxl")


@dataclass
class TextInfo:
    """What the checks need of a loaded model's text side. The tokenizers are the model's own, shared
    read-only (engine/weights/tokenizers.py): only read here, never changed."""

    tokenizers: list[Any] = field(default_factory=list)
    text_layers: int = 0  # hidden layers of the first text encoder (clip_skip must be fewer)


def text_info(model: Any) -> TextInfo:
    """Taken once when the model is loaded, before any job runs (in the process that loaded it; the
    process and Ray engines send it to the API process, which runs ``check_request`` itself)."""
    from pixelserve.engine.adapters.textual_inversion import text_encoders  # torch: only where models load

    encoders = text_encoders(model.pipe) if model.spec.family in ADAPTER_FAMILIES else []
    layers = encoders[0].text_encoder.config.num_hidden_layers if encoders else 0
    return TextInfo([e.tokenizer for e in encoders], layers)


def check_model(request: GenerationRequest, specs: dict[str, ModelSpec], text_infos: dict[str, TextInfo]) -> None:
    """EngineClient.check for every engine, run where the request arrives (the API process):
    the model is served here, and ``check_request`` against it."""
    spec = specs.get(request.model)
    if spec is None:
        raise NotFound(f"unknown model {request.model!r}", field="model")
    check_request(request, spec, text_infos.get(request.model))


def check_request(request: GenerationRequest, spec: ModelSpec, info: TextInfo | None) -> None:
    family = spec.family
    _check_family_features(request, family)
    if request.prompt_schedule and family != "sd":
        raise NotSupported(f"prompt editing [a:b:when] and alternation [a|b] are built for sd models, not {family}",
                           field="prompt")
    if family not in ADAPTER_FAMILIES:
        return
    if request.clip_skip is not None and info is not None and not 0 <= request.clip_skip < info.text_layers:
        raise InvalidRequest(f"must be 0 to {info.text_layers - 1} for this model", field="clip_skip")
    if request.high_noise_frac is not None and not 0 < request.high_noise_frac < 1:
        raise InvalidRequest("must be between 0 and 1 (exclusive)", field="high_noise_frac")
    for ref in request.loras:
        _safetensors_file(ref.path, "loras", ref.name)
    for ref in request.textual_inversions:
        _safetensors_file(ref.path, "textual_inversions", ref.name)
        if not ref.token.strip() or any(c.isspace() for c in ref.token):
            raise InvalidRequest(f"trigger word of {ref.name!r} must be one word", field="textual_inversions")
    if request.vae is not None:
        _safetensors_file(request.vae, "vae", Path(request.vae).name)
    if request.checkpoint is not None:
        _check_checkpoint(request.checkpoint, family)
    if request.controlnet is not None:
        _check_controlnet(request, family)
    if request.image_prompt is not None and spec.ip_adapter is None:
        raise NotSupported(f"image prompts (transfer_images) need an IP-Adapter configured for model {spec.id} "
                           "(ip_adapter and image_encoder in the model config)", field="transfer_images")
    if info is not None:
        check_token_limits(request, family, info.tokenizers)


def _check_family_features(request: GenerationRequest, family: str) -> None:
    if family in ADAPTER_FAMILIES:
        return
    used = [name for name, on in (
        ("loras", request.loras), ("textual_inversions", request.textual_inversions),
        ("checkpoint", request.checkpoint), ("vae", request.vae), ("controlnet", request.controlnet),
        ("transfer_images", request.image_prompt), ("prompt_2", request.prompt_2),
        ("negative_prompt_2", request.negative_prompt_2), ("clip_skip", request.clip_skip),
        ("prompt_weighting", request.prompt_weighting), ("inpaint_full_res", request.inpaint_full_res),
        ("outpainting", request.outpaint), ("high_noise_frac", request.high_noise_frac),
        ("subseed_strength", request.subseed_strength), ("tiling", request.tiling),
        ("seed_resize_from", request.seed_resize_from),
    ) if on]
    if used:
        raise NotSupported(f"{family} models do not take {used[0]}", field=used[0])


def _safetensors_file(path: str, field_name: str, name: str) -> None:
    try:
        if detect_format(Path(path)) != "single_file":
            raise WeightsFormatError("a folder, not one .safetensors file")
    except WeightsFormatError as e:
        raise InvalidRequest(f"{name!r} cannot be used: {_reason(e, path)}", field=field_name) from None


def _reason(e: Exception, path: str) -> str:
    return str(e).replace(str(path), Path(path).name)  # never echo server paths


def _check_checkpoint(path: str, family: str) -> None:
    try:
        fmt = detect_format(Path(path))
    except WeightsFormatError as e:
        raise InvalidRequest(f"cannot be used: {_reason(e, path)}", field="checkpoint") from None
    if fmt == "diffusers":
        cls = json.loads((Path(path) / "model_index.json").read_text()).get("_class_name")
        found = next((f for f, names in PIPELINE_CLASSES.items() if cls in names), None)
    else:
        found = single_file_family(Path(path))
    if found != family:
        raise InvalidRequest(f"is a {found or 'unknown'} checkpoint; this model is {family}", field="checkpoint")


def single_file_family(path: Path) -> str | None:
    """sd or sdxl from an original-layout checkpoint's tensor names (header only)."""
    keys = tensor_names(path)
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.") for k in keys):
        return "sd"
    return None


def _check_controlnet(request: GenerationRequest, family: str) -> None:
    ref = request.controlnet
    path = Path(ref.path)
    if path.is_dir():
        config = controlnet_config.config_of(path)
        if not any(path.glob("*.safetensors")):
            raise InvalidRequest(f"{ref.name!r} has no safetensors weights", field="controlnet")
        found = controlnet_config.family_of_config(config)
        if found != family:
            raise InvalidRequest(f"{ref.name!r} is a {found} ControlNet; this model is {family}", field="controlnet")
    else:
        _safetensors_file(ref.path, "controlnet", ref.name)
    if ref.preprocess is not None and ref.preprocess not in PREPROCESSORS:
        raise NotSupported(f"the {ref.preprocess!r} preprocessor needs weights this server does not have; send "
                           f"the control map with preprocessing off, or use {', '.join(PREPROCESSORS)}",
                           field="controlnet_preprocess")
    if not 0 <= ref.end <= 1:
        raise InvalidRequest("must be 0 to 1", field="controlnet_early_stop")
    controlnet_config.pipeline_name(family, request.task)
