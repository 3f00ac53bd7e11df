"""Karlo's face_refiner: repaint small faces at a higher resolution and paste them back.

Faces are found by NudeNet's FACE_FEMALE / FACE_MALE classes (its detector ships inside its wheel
and gives a confidence per face; the OpenCV 5 wheel ships no face model). For each face that
passes ``bbox_filter_threshold`` and whose box covers at most ``bbox_size_threshold`` of the image:

1. crop the box plus a margin,
2. upscale the crop to ``CROP_SIDE`` (the model sees the face large),
3. img2img it with strength ``(1 - weight_sft) * 0.6 + 0.05`` (weight_sft 1 keeps nearly all),
4. scale it back and paste it through a feathered mask that is zero at the crop's edge,

``restoration_repeats`` times. Pixels outside the crops are never written.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PIL import Image, ImageDraw, ImageFilter

from pixelserve.core.request import FaceRefine, GenerationRequest
from pixelserve.engine.families.base import Family
from pixelserve.engine.post.detail import img2img
from pixelserve.engine.post.safety import FACE_CLASSES, detect

MARGIN = 0.25  # of the face box, on each side
CROP_SIDE = 512

Box = tuple[int, int, int, int]  # x, y, width, height


def detect_faces(image: Any) -> list[tuple[Box, float]]:
    return [(tuple(d["box"]), d["score"]) for d in detect(image) if d["class"] in FACE_CLASSES]


def select(faces: list[tuple[Box, float]], size: tuple[int, int], opts: FaceRefine) -> list[Box]:
    area = size[0] * size[1]
    keep = []
    for (x, y, w, h), score in faces:
        if opts.bbox_filter_threshold > 0 and score < opts.bbox_filter_threshold:
            continue
        if (w * h) / area > opts.bbox_size_threshold:
            continue
        keep.append((x, y, w, h))
    return keep


def crop_region(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    mx, my = int(w * MARGIN), int(h * MARGIN)
    return max(0, x - mx), max(0, y - my), min(size[0], x + w + mx), min(size[1], y + h + my)


def feather(size: tuple[int, int]) -> Image.Image:
    """A mask that is 255 in the middle and fades to 0 at the border of the crop."""
    w, h = size
    pad = max(1, min(w, h) // 8)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((pad, pad, w - 1 - pad, h - 1 - pad), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(pad / 2))
    ImageDraw.Draw(mask).rectangle((0, 0, w - 1, h - 1), outline=0)  # the edge itself stays original
    return mask


def strength(weight_sft: float) -> float:
    return (1.0 - weight_sft) * 0.6 + 0.05


def refine(model: Any, family: Family, request: GenerationRequest, image: Any, seed: int,
           cancel: threading.Event | None = None,
           detector: Callable[[Any], list[tuple[Box, float]]] = detect_faces) -> Any:
    opts = request.post.face_refine
    image = image.convert("RGB")
    boxes = select(detector(image), image.size, opts)
    for _ in range(opts.restoration_repeats):
        for box in boxes:
            left, top, right, bottom = crop_region(box, image.size)
            if right - left < 8 or bottom - top < 8:
                continue
            crop = image.crop((left, top, right, bottom))
            scale = CROP_SIDE / max(crop.size)
            big = crop.resize((max(8, int(crop.width * scale) // 8 * 8), max(8, int(crop.height * scale) // 8 * 8)),
                              Image.Resampling.LANCZOS)
            redone = img2img(model, family, request, big, seed, strength(opts.weight_sft), cancel)
            redone = redone.resize(crop.size, Image.Resampling.LANCZOS)
            image.paste(redone, (left, top), feather(crop.size))
    return image
