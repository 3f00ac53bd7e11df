"""Post-processing of generated images, in order: hires second pass, face refinement, upscale, NSFW scoring."""

from __future__ import annotations

import threading
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families.base import Family
from pixelserve.engine.post import face_refine, hires, safety, upscale


def apply(model: Any, family: Family, request: GenerationRequest, images: list[Any],
          cancel: threading.Event | None = None, nsfw: bool = True) -> tuple[list[Any], list[float] | None]:
    """Returns the processed images and one NSFW score per image (None unless asked for).

    ``nsfw=False``: the caller scores them itself (the engine does, off the device thread).
    """
    post = request.post
    if post.hires is not None:
        images = hires.second_pass(model, family, request, images, cancel)
    if post.face_refine is not None:
        images = [face_refine.refine(model, family, request, im, seed, cancel)
                  for im, seed in zip(images, request.seeds)]
    if post.upscale:
        images = [upscale.upscale(model, family, request, im, seed, cancel)
                  for im, seed in zip(images, request.seeds)]
    scores = nsfw_scores(images) if post.nsfw_check and nsfw else None
    return images, scores


def nsfw_scores(images: list[Any]) -> list[float]:
    return [safety.nsfw_score(im) for im in images]
