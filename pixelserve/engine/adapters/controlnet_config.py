"""What the model checks need to know of a ControlNet without loading it (no torch): its folder's
config, the family it was trained for, the pipeline class per family and task."""

from __future__ import annotations

import json
from pathlib import Path

from pixelserve.errors import InvalidRequest, NotSupported

PIPELINES = {
    "sd": {"txt2img": "StableDiffusionControlNetPipeline", "img2img": "StableDiffusionControlNetImg2ImgPipeline",
           "inpaint": "StableDiffusionControlNetInpaintPipeline"},
    "sdxl": {"txt2img": "StableDiffusionXLControlNetPipeline",
             "img2img": "StableDiffusionXLControlNetImg2ImgPipeline",
             "inpaint": "StableDiffusionXLControlNetInpaintPipeline"},
}


def pipeline_name(family: str, task: str) -> str:
    try:
        return PIPELINES[family][task]
    except KeyError:
        raise NotSupported(f"ControlNet is not available for {family} {task}", field="controlnet") from None


def config_of(path: Path) -> dict | None:
    """A ControlNet folder's config (None for a single file)."""
    path = Path(path)
    if path.is_dir():
        file = path / "config.json"
        if not file.is_file():
            raise InvalidRequest(f"{path.name} is a folder without config.json (not a diffusers ControlNet)",
                                 field="controlnet")
        return json.loads(file.read_text())
    return None


def family_of_config(config: dict) -> str:
    """'sdxl' when the ControlNet takes SDXL's added text/time conditioning, else 'sd'."""
    return "sdxl" if config.get("addition_embed_type") == "text_time" else "sd"
