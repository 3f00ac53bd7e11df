"""Upscale x2 / x4 (capped at ``max_side``): a LANCZOS resize, then a low-strength img2img pass
with the same model to put detail back ("hires fix"). A model without img2img (unCLIP) gets the
resize alone. ESRGAN-type upscalers (spandrel) are not offered: spandrel needs torchvision,
which does not import beside this torch build.
"""

from __future__ import annotations

import threading
from typing import Any

from PIL import Image

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import Family
from pixelserve.engine.post.detail import img2img

#: Strength of the detail pass: low enough to keep the composition, high enough to sharpen it.
DETAIL_STRENGTH = 0.3


def target_size(width: int, height: int, factor: int, max_side: int) -> tuple[int, int]:
    """``factor`` times the size, shrunk to keep both sides <= max_side, multiples of 8."""
    scale = min(float(factor), max_side / max(width, height))
    w, h = int(width * scale) // 8 * 8, int(height * scale) // 8 * 8
    return max(w, 8), max(h, 8)


def upscale(model: Any, family: Family, request: GenerationRequest, image: Any, seed: int,
            cancel: threading.Event | None = None) -> Any:
    # 1. The output size.
    size = target_size(image.width, image.height, request.post.upscale, request.post.max_side)
    # 2. High-quality resize.
    big = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if "img2img" not in family.task_pipelines:
        return big
    # 3. Detail pass with the same model, prompt, sampler and seed.
    return img2img(model, family, request, big, seed, DETAIL_STRENGTH, cancel)
