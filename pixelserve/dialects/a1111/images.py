"""img2img inputs the A1111 way: init images and masks decoded, resized by ``resize_mode``, the mask
read with A1111's polarity, blurred, inverted, and the masked area pre-filled (``inpainting_fill``);
and the infotext written into the answered image files.

Sources: spec B.4 (``processing.StableDiffusionProcessingImg2Img.init``, ``images.resize_image``,
``masking.fill``, ``create_binary_mask``), B.5 (``encode_pil_to_base64``).
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageFilter, ImageOps

from pixelserve.core.fetch import FetchPolicy
from pixelserve.core.images import INPUT_FORMATS, decode_base64_image, fetch_image
from pixelserve.errors import InvalidRequest

#: resize_mode values built here (3, "Just resize (latent upscale)", resizes latents: not built).
RESIZE_MODES = {0: "Just resize", 1: "Crop and resize", 2: "Resize and fill"}


def decode(value: str, field: str, max_bytes: int, max_pixels: int, policy: FetchPolicy = FetchPolicy()) -> Image.Image:
    """Raw base64 or a ``data:`` URI (webuiapi sends these) -> a PIL image (bad input: 400, not A1111's 500);
    an http(s) URL through the guarded fetcher (public addresses only, as A1111's ``api_forbid_local_requests``)."""
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return fetch_image(value, field=field, max_bytes=max_bytes, max_pixels=max_pixels, formats=INPUT_FORMATS,
                           policy=policy)
    return decode_base64_image(value, field=field, max_bytes=max_bytes, max_pixels=max_pixels, formats=INPUT_FORMATS)


def resize(image: Image.Image, mode: int, width: int, height: int, resample=Image.Resampling.LANCZOS) -> Image.Image:
    """``images.resize_image``: 0 stretch to the size; 1 fill it, cropping the overflow (centred);
    2 fit inside it and fill the bars with the picture's stretched edges."""
    if image.size == (width, height):
        return image
    if mode == 0:
        return image.resize((width, height), resample)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        return ImageOps.fit(image, (width, height), resample)
    w = width if ratio < src_ratio else image.width * height // image.height
    h = height if ratio >= src_ratio else image.height * width // image.width
    resized = image.resize((max(1, w), max(1, h)), resample)
    out = Image.new(image.mode, (width, height))
    out.paste(resized, ((width - resized.width) // 2, (height - resized.height) // 2))
    if ratio < src_ratio:  # bars above and below
        fill = (height - resized.height) // 2
        if fill > 0:
            out.paste(resized.resize((width, fill), box=(0, 0, width, 0)), (0, 0))
            out.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                      (0, fill + resized.height))
    elif ratio > src_ratio:  # bars left and right
        fill = (width - resized.width) // 2
        if fill > 0:
            out.paste(resized.resize((fill, height), box=(0, 0, 0, height)), (0, 0))
            out.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                      (fill + resized.width, 0))
    return out


def binary_mask(mask: Image.Image) -> Image.Image:
    """A1111's polarity: in an RGBA mask that is not fully opaque, alpha > 128 repaints; otherwise the
    grey level does (white = repaint). Returned as L, white = repaint (pixelserve's convention too)."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        return mask.getchannel("A").point(lambda a: 255 if a > 128 else 0)
    return mask.convert("L")


def blur(mask: Image.Image, x: int, y: int) -> Image.Image:
    """Gaussian blur of the mask, separately along x and y (A1111's ``mask_blur_x`` / ``_y``)."""
    if x <= 0 and y <= 0:
        return mask
    return mask.filter(ImageFilter.GaussianBlur((max(0, x), max(0, y))))


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """``inpainting_fill`` 0 ("fill", ``masking.fill``): the masked area painted with ever less blurred
    colours of the picture around it, so sampling starts from the surroundings' colours."""
    out = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


# -- answers: the infotext inside the image file ---------------------------------------------------
def png_with_text(data: bytes, key: str, text: str) -> bytes:
    """A PNG with a text chunk added after IHDR (tEXt when latin-1 suffices, else iTXt as UTF-8),
    without decoding the pixels."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    try:
        kind, body = b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        kind, body = b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def with_exif_comment(data: bytes, fmt: str, text: str, quality: int) -> bytes:
    """A JPEG or WebP of the PNG ``data`` carrying the infotext in EXIF UserComment (as A1111 writes it)."""
    image = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")  # UserComment, piexif's "unicode"
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format={"jpeg": "JPEG", "webp": "WEBP"}[fmt], quality=quality, exif=exif)
    return buf.getvalue()


def check_resize_mode(mode: int) -> None:
    if mode == 3:
        raise InvalidRequest("3 (Just resize, latent upscale) is not supported by this server: use 0, 1 or 2",
                             field="resize_mode")
    if mode not in RESIZE_MODES:
        raise InvalidRequest("must be 0 (Just resize), 1 (Crop and resize) or 2 (Resize and fill)",
                             field="resize_mode")
