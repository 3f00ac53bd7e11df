"""ControlNet for the sd and sdxl families: loading, the control map, the pipeline arguments.

A ControlNet comes as a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``)
or one safetensors file (its architecture taken from the model's UNet, as ControlNets are copies
of their base UNet's encoder). Loaded ones are kept per model (bounded) and added to the per-call
pipeline only, which is the task's ControlNet variant:

=====  ======================================  ==============================================
task   sd                                      sdxl
=====  ======================================  ==============================================
t2i    StableDiffusionControlNetPipeline       StableDiffusionXLControlNetPipeline
i2i    StableDiffusionControlNetImg2ImgPipeline StableDiffusionXLControlNetImg2ImgPipeline
inp    StableDiffusionControlNetInpaintPipeline StableDiffusionXLControlNetInpaintPipeline
=====  ======================================  ==============================================

The control image is resized to the output size. ``preprocess="canny"`` turns it into an edge map
with OpenCV (``cv2.Canny`` thresholds 100 / 200, as OctoAI's own sample); ``None`` takes it as the
map already. Other preprocessors need weights pixelserve does not ship: they are refused (501).
``conditioning_scale`` -> ``controlnet_conditioning_scale``; ``end`` (OctoAI's
``controlnet_early_stop``) -> ``control_guidance_end``: the fraction of steps after which control stops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelserve.core.request import PREPROCESSORS, ControlNetRef, GenerationRequest
from pixelserve.engine.adapters.base import cached_load
from pixelserve.engine.weights import single_file
from pixelserve.errors import InvalidRequest, NotSupported

CANNY_LOW, CANNY_HIGH = 100, 200
MAX_CONTROLNETS = 2


def load(model: Any, path: str) -> Any:
    """The ControlNetModel at ``path`` on the model's device (cached per model)."""
    return cached_load(model, "controlnets", MAX_CONTROLNETS, path, lambda _: _load(model, Path(path)))


def _load(model: Any, path: Path) -> Any:
    from diffusers import ControlNetModel

    dtype = model.pipe.unet.dtype
    try:
        if path.is_dir():
            if not any(path.glob("*.safetensors")):
                raise InvalidRequest(f"{path.name} has no safetensors weights", field="controlnet")
            controlnet = ControlNetModel.from_pretrained(path, torch_dtype=dtype, local_files_only=True,
                                                         use_safetensors=True)
        else:
            config = Path(model.cache_dir) / "controlnet-config" / f"{model.spec.id}-{_channels_label(path)}"
            _write_config_from_unet(model.pipe.unet, config, conditioning_channels(path))
            controlnet = ControlNetModel.from_single_file(
                str(single_file._safetensors_path(path, Path(model.cache_dir) / "single_file")),
                config=str(config), local_files_only=True, torch_dtype=dtype)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise InvalidRequest(f"cannot load {path.name} as a ControlNet for this model: {e}", field="controlnet") from e
    return controlnet.to(model.device).eval()


def conditioning_channels(path: Path) -> list[int] | None:
    """The control-image encoder's channels, read from a single file's tensor shapes (header only).

    diffusers keys: ``controlnet_cond_embedding.conv_in`` then ``blocks.{2i+1}`` (the strided convs);
    original keys: ``input_hint_block.{0,4,8,12,...}`` (every other conv of the Sequential).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()
                  if k.endswith(".weight") and ("controlnet_cond_embedding." in k or "input_hint_block." in k)}
    if "controlnet_cond_embedding.conv_in.weight" in shapes:
        out = [shapes["controlnet_cond_embedding.conv_in.weight"][0]]
        i = 1
        while f"controlnet_cond_embedding.blocks.{i}.weight" in shapes:
            out.append(shapes[f"controlnet_cond_embedding.blocks.{i}.weight"][0])
            i += 2
        return out
    hint = sorted((int(k.split(".")[-2]), v[0]) for k, v in shapes.items() if k.startswith("input_hint_block."))
    if hint:
        convs = [c for _, c in hint[:-1]]  # the last one is the zero conv to the UNet's width
        return convs[0::2]
    return None


def _channels_label(path: Path) -> str:
    channels = conditioning_channels(path)
    return "x".join(map(str, channels)) if channels else "default"


def _write_config_from_unet(unet: Any, folder: Path, channels: list[int] | None) -> None:
    """config.json of the ControlNet that copies ``unet``'s encoder (from_unet's mapping, no weights built)."""
    import inspect

    from diffusers import ControlNetModel

    keys = set(inspect.signature(ControlNetModel.__init__).parameters) - {"self"}
    config = {k: v for k, v in dict(unet.config).items() if k in keys and not k.startswith("_")}
    if channels:
        config["conditioning_embedding_out_channels"] = channels
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", **config}, default=list))


def control_image(ref: ControlNetRef, width: int, height: int) -> Any:
    """The control map at the output size: the image as sent, or its canny edges."""
    from PIL import Image

    image = ref.image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    if ref.preprocess is None:
        return image
    if ref.preprocess != "canny":
        raise NotSupported(f"the {ref.preprocess!r} ControlNet preprocessor needs weights this server does not "
                           f"have; send the control map with preprocessing off, or use one of {PREPROCESSORS}",
                           field="controlnet_preprocess")
    import cv2
    import numpy as np

    edges = cv2.Canny(np.asarray(image), CANNY_LOW, CANNY_HIGH)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def pipeline_kwargs(request: GenerationRequest) -> dict[str, Any]:
    """The ControlNet arguments of this call (empty without a ControlNet)."""
    ref = request.controlnet
    if ref is None:
        return {}
    image = control_image(ref, request.width, request.height)
    kwargs: dict[str, Any] = {"controlnet_conditioning_scale": float(ref.conditioning_scale),
                              "control_guidance_start": 0.0, "control_guidance_end": float(ref.end)}
    # txt2img variants take the map as ``image``; img2img / inpaint ones keep ``image`` for the input.
    kwargs["image" if request.task == "txt2img" else "control_image"] = image
    return kwargs
