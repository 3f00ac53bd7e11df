"""``POST /png-info``, ``/extra-single-image`` and ``/extra-batch-images``: pure functions on images.

png-info reads the infotext back: a PNG's ``parameters`` text chunk, or a JPEG/WebP's EXIF
UserComment (where A1111, and pixelserve's txt2img, write it), parsed as A1111 does (infotext.parse).

Extras upscale with the resizing upscalers A1111 itself ships without a model: ``Lanczos`` and
``Nearest`` (PIL, as A1111's ``upscaler.UpscalerLanczos`` / ``UpscalerNearest``); ``None`` leaves the
image as it is. Model upscalers (ESRGAN and the like) are not served: spandrel needs torchvision, which
does not import beside this torch build (engine/post/upscale.py). Face restoration in extras
(``gfpgan_visibility``, ``codeformer_visibility``) is not offered: a value above 0 is a 400 naming it.
"""

from __future__ import annotations

import base64
from typing import Any

from PIL import Image
from pydantic import BaseModel

from pixelserve.core.images import decode_base64_image, fast_png
from pixelserve.dialects.a1111 import infotext
from pixelserve.errors import InvalidRequest, PayloadTooLarge

MAX_IMAGE_BYTES = 50 * 1024 * 1024
#: A1111's upscalers that need no model, by name -> PIL's resampling (None: no upscale).
UPSCALERS: dict[str, Image.Resampling | None] = {
    "None": None, "Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
#: EXIF tags: the Exif IFD and its UserComment.
EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
#: PIL's own keys in ``Image.info`` that are not text chunks (A1111's read_info_from_image skips them too).
IGNORED_INFO = {"parameters", "exif", "dpi", "icc_profile", "transparency", "gamma", "chromaticity", "srgb",
                "jfif", "jfif_version", "jfif_unit", "jfif_density", "progression", "progressive", "adobe",
                "adobe_transform", "loop", "duration", "background", "aspect"}


class ExtrasSingleImageRequest(BaseModel):
    """A1111's ``ExtrasSingleImageRequest``: the fields in its order, its defaults, null accepted."""

    resize_mode: int | None = 0  # 0: by upscaling_resize, 1: to upscaling_resize_w x _h
    show_extras_results: bool | None = True
    gfpgan_visibility: float | None = 0
    codeformer_visibility: float | None = 0
    codeformer_weight: float | None = 0
    upscaling_resize: float | None = 2
    upscaling_resize_w: int | None = 512
    upscaling_resize_h: int | None = 512
    upscaling_crop: bool | None = True
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float | None = 0
    upscale_first: bool | None = False
    image: str | None = ""


class FileData(BaseModel):
    data: str
    name: str


class ExtrasBatchImagesRequest(ExtrasSingleImageRequest):
    image: str | None = None  # not in A1111's batch request (imageList instead): ignored
    imageList: list[FileData]


class PNGInfoRequest(BaseModel):
    image: str


def b64_png(image: Image.Image) -> str:
    return base64.b64encode(fast_png(image.convert("RGBA" if "A" in image.getbands() else "RGB"))).decode()


def decode(value: str | None, field: str, max_pixels: int) -> Image.Image:
    return decode_base64_image(value or "", field=field, max_bytes=MAX_IMAGE_BYTES, max_pixels=max_pixels)


# -- png-info ----------------------------------------------------------------------------------
def _user_comment(image: Image.Image) -> str | None:
    raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    if isinstance(raw, bytes):
        code, body = raw[:8], raw[8:]
        if code.startswith(b"UNICODE"):
            encoding = "utf-16-be" if body[:1] == b"\x00" else "utf-16-le"
            return body.decode(encoding, errors="replace").rstrip("\x00")
        return body.decode("utf-8", errors="replace").rstrip("\x00")
    return raw if isinstance(raw, str) else None


def png_info(body: PNGInfoRequest, max_pixels: int) -> dict[str, Any]:
    """``{"info": infotext, "items": {other text keys}, "parameters": {parsed infotext}}``."""
    if not body.image.strip():
        return {"info": "", "items": {}, "parameters": {}}
    image = decode(body.image, "image", max_pixels)
    text = image.info.get("parameters")
    if not isinstance(text, str):
        text = _user_comment(image)
    items = {k: v if isinstance(v, str) else str(v) for k, v in image.info.items() if k not in IGNORED_INFO}
    return {"info": text or "", "items": items, "parameters": infotext.parse(text) if text else {}}


# -- extras: upscale ---------------------------------------------------------------------------
def _upscaler(name: str | None, field: str) -> Image.Resampling | None:
    name = "None" if name is None else name
    for known, resample in UPSCALERS.items():
        if name.lower() == known.lower():
            return resample
    raise InvalidRequest(f"upscaler {name!r} not found; upscalers: {', '.join(UPSCALERS)} (see /sdapi/v1/upscalers)",
                         field=field)


def check(body: ExtrasSingleImageRequest) -> None:
    """Refuses, before any image is decoded, what pixelserve's extras do not do."""
    for name in ("gfpgan_visibility", "codeformer_visibility"):
        if (getattr(body, name) or 0) > 0:
            raise InvalidRequest("face restoration in extras is not supported by pixelserve", field=name)
    if (body.resize_mode or 0) not in (0, 1):
        raise InvalidRequest("must be 0 (scale by upscaling_resize) or 1 (to upscaling_resize_w x _h)",
                             field="resize_mode")
    if (body.resize_mode or 0) == 0 and not 0 < (body.upscaling_resize or 0) <= 8:
        raise InvalidRequest("must be above 0 and at most 8", field="upscaling_resize")
    if body.resize_mode == 1 and not all(1 <= (v or 0) <= 8192 for v in (body.upscaling_resize_w,
                                                                         body.upscaling_resize_h)):
        raise InvalidRequest("upscaling_resize_w and _h must be 1 to 8192", field="upscaling_resize_w")
    visibility = body.extras_upscaler_2_visibility or 0
    if not 0 <= visibility <= 1:
        raise InvalidRequest("must be 0 to 1", field="extras_upscaler_2_visibility")
    _upscaler(body.upscaler_1, "upscaler_1")
    _upscaler(body.upscaler_2, "upscaler_2")


def target(body: ExtrasSingleImageRequest, width: int, height: int) -> tuple[int, int, bool]:
    """(width, height, crop): the size the upscaler resizes to, and whether to crop to w x h after."""
    if (body.resize_mode or 0) == 1:
        w, h = body.upscaling_resize_w or 512, body.upscaling_resize_h or 512
        if body.upscaling_crop is not False:  # A1111: scale to cover, then crop the centre
            scale = max(w / width, h / height)
            return round(width * scale), round(height * scale), True
        return w, h, False
    factor = body.upscaling_resize or 2
    return round(width * factor), round(height * factor), False


def upscale(body: ExtrasSingleImageRequest, image: Image.Image, max_pixels: int) -> Image.Image:
    first = _upscaler(body.upscaler_1, "upscaler_1")
    second = _upscaler(body.upscaler_2, "upscaler_2")
    visibility = body.extras_upscaler_2_visibility or 0
    if first is None and (second is None or visibility == 0):
        return image  # A1111: "None" leaves the image as it is
    w, h, crop = target(body, image.width, image.height)
    if w * h > max_pixels:
        raise PayloadTooLarge(f"the upscaled image of {w}x{h} is over {max_pixels} pixels", field="upscaling_resize")
    out = image.resize((w, h), first) if first is not None else image.resize((w, h), second)
    if first is not None and second is not None and visibility > 0:
        out = Image.blend(out, image.resize((w, h), second), visibility)
    if crop:
        tw, th = body.upscaling_resize_w or 512, body.upscaling_resize_h or 512
        left, top = (w - tw) // 2, (h - th) // 2
        out = out.crop((left, top, left + tw, top + th))
    return out


def single_image(body: ExtrasSingleImageRequest, max_pixels: int) -> dict[str, Any]:
    check(body)
    out = upscale(body, decode(body.image, "image", max_pixels), max_pixels)
    return {"html_info": _html_info(body, out), "image": b64_png(out)}


def batch_images(body: ExtrasBatchImagesRequest, max_pixels: int) -> dict[str, Any]:
    check(body)
    images = [decode(item.data, f"imageList.{i}.data", max_pixels) for i, item in enumerate(body.imageList)]
    outs = [upscale(body, im, max_pixels) for im in images]
    return {"html_info": _html_info(body, outs[0]) if outs else "", "images": [b64_png(o) for o in outs]}


def _html_info(body: ExtrasSingleImageRequest, out: Image.Image) -> str:
    return f"<p>Postprocess upscale by {body.upscaler_1 or 'None'}: {out.width}x{out.height}</p>"
