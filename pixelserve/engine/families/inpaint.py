"""Inpainting options: OctoAI's ``inpaint_full_res`` (+ padding) and ``outpainting``.

- ``inpaint_full_res``: repaint only a crop around the mask at the full output resolution, then
  paste it back: diffusers' inpaint pipelines do exactly this with ``padding_mask_crop`` (the
  masked area's bounding box in the image's aspect ratio, grown by the padding in pixels).
- ``outpaint``: the white part of the mask is new canvas (the border around the picture). An
  inpainting model fills a hole far better from a rough guess than from the flat colour the client
  sent, so the masked pixels are first filled from the picture's edges with OpenCV's Telea
  inpainting, and the pipeline then repaints them at full strength (1.0).

Either way, pixels outside the mask come back exactly as sent (families/base.keep_unmasked).
"""

from __future__ import annotations

from typing import Any

#: Neighbourhood (pixels) cv2.inpaint draws from; the radius A1111's outpainting fill uses is similar.
FILL_RADIUS = 5


def prefill(image: Any, mask: Any) -> Any:
    """``image`` with its masked (white) pixels filled from the unmasked ones (cv2.INPAINT_TELEA)."""
    import cv2
    import numpy as np
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"))
    holes = (np.asarray(mask.convert("L").resize(image.size)) > 127).astype(np.uint8) * 255
    if not holes.any() or holes.all():  # nothing to fill, or nothing to fill it from
        return image.convert("RGB")
    filled = cv2.inpaint(rgb, holes, FILL_RADIUS, cv2.INPAINT_TELEA)
    return Image.fromarray(filled)


def pipeline_kwargs(request: Any) -> dict[str, Any]:
    """The inpaint pipeline's arguments for the request's inpainting options (empty for other tasks)."""
    if request.task != "inpaint":
        return {}
    kwargs: dict[str, Any] = {}
    if request.inpaint_full_res:
        kwargs["padding_mask_crop"] = int(request.inpaint_full_res_padding)
    if request.outpaint:
        kwargs["image"] = prefill(request.init_image, request.mask_image)
        kwargs["strength"] = 1.0
    return kwargs
