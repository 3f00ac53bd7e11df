"""Image bytes in and out: base64 or URL inputs decoded with size and pixel limits, png/jpeg/webp encoding.

Every dialect decodes client images through here, so the limits are the same everywhere: the
byte size is checked before decoding, the declared pixel count (decompression bombs) and side
before a single pixel is decoded, the format by content (never by name or MIME type).
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import warnings
from dataclasses import replace
from types import ModuleType
from typing import Callable

from PIL import Image, ImageOps
from zlib_ng import zlib_ng

from pixelserve.core.fetch import FetchPolicy, fetch
from pixelserve.errors import InvalidRequest, PayloadTooLarge

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
#: PIL format names of the inputs accepted unless a caller says otherwise.
INPUT_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
HEIF_FORMATS = frozenset({"HEIF"})

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode_image(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    """Encode to png (lossless; quality ignored), jpeg or webp (quality 1-100)."""
    if fmt not in _PIL_FORMATS:
        raise InvalidRequest(f"unsupported image format {fmt!r}", field="image_format")
    if fmt == "png" and image.mode in _PNG_COLOR_TYPES:
        return fast_png(image)
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
    else:
        image.convert("RGB").save(buf, format=_PIL_FORMATS[fmt], quality=int(quality or 75))
    return buf.getvalue()


_PNG_COLOR_TYPES = {"RGB": 2, "RGBA": 6}


def fast_png(image: Image.Image, deflate_with: ModuleType = zlib_ng) -> bytes:
    """A lossless 8-bit RGB(A) PNG: every row Up-filtered, then zlib level 1 with the RLE strategy.

    Written by hand because Pillow's PNG encoder tries all five row filters on every row and
    offers no way to pick one, and that search dominated the server's CPU per answer; one Up filter
    with run-length deflate is much faster and smaller on smooth (generated) images
    (bench/png_encode.py compares them). Any PNG decoder reads it (a test round-trips it).
    Deflate and CRC come from zlib-ng: the same stream, byte for byte, as the standard zlib at the
    same settings, and faster. ``deflate_with``: the module (zlib_ng or the standard zlib: the same
    API) the bench compares.
    """
    import numpy as np

    rows = np.asarray(image, dtype=np.uint8)
    height, width = rows.shape[:2]
    rows = rows.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # filter type Up: each byte minus the byte above it
    filtered[0, 0] = 0  # the first row has no row above: unfiltered
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps modulo 256, as PNG defines
    z = deflate_with
    deflate = z.compressobj(1, z.DEFLATED, 15, 9, z.Z_RLE)
    idat = deflate.compress(filtered.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPES[image.mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, data, z.crc32)
                                           for kind, data in ((b"IHDR", header), (b"IDAT", idat), (b"IEND", b"")))


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` cropped to the aspect ratio of width x height (centred) and resized to it, as RGB."""
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _png_chunk(kind: bytes, data: bytes, crc32: Callable[[bytes], int]) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc32(kind + data))


def decode_base64_image(value: str, *, field: str, max_bytes: int, max_pixels: int,
                        formats: frozenset[str] = INPUT_FORMATS, max_side: int | None = None) -> Image.Image:
    """A base64 string (plain, with newlines, or a data: URL) -> a fully loaded RGB(A) PIL image."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("must be a non-empty base64 string", field=field)
    if value.startswith(("http://", "https://")):
        raise InvalidRequest("must be base64 image data; image URLs are not fetched", field=field)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) > max_bytes * 4 // 3 + 16:
        raise PayloadTooLarge(f"image over {max_bytes} bytes", field=field)
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("is not valid base64", field=field) from None
    return open_image_bytes(raw, field=field, max_bytes=max_bytes, max_pixels=max_pixels, formats=formats,
                            max_side=max_side)


def open_image_bytes(raw: bytes, *, field: str, max_bytes: int, max_pixels: int,
                     formats: frozenset[str] = INPUT_FORMATS, max_side: int | None = None) -> Image.Image:
    """Bytes -> a loaded image, checking format, byte size, sides and pixel count before decoding."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"image over {max_bytes} bytes", field=field)
    if formats & HEIF_FORMATS:
        _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw), formats=sorted(formats))
            # Check the declared size before decoding a single pixel (decompression bombs).
            if img.width * img.height > max_pixels:
                raise PayloadTooLarge(f"image of {img.width}x{img.height} is over {max_pixels} pixels", field=field)
            if max_side is not None and max(img.size) > max_side:
                raise InvalidRequest(f"image of {img.width}x{img.height} is over {max_side} px a side", field=field)
            img.load()
    except (PayloadTooLarge, InvalidRequest):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):  # PIL's own header check
        raise PayloadTooLarge(f"image declares more than {max_pixels} pixels", field=field) from None
    except Exception:
        names = ", ".join(sorted(f.lower() for f in formats))
        raise InvalidRequest(f"is not a readable image of an accepted format ({names})", field=field) from None
    return img.convert("RGBA" if "A" in img.getbands() else "RGB")


def fetch_image(url: str, *, field: str, max_bytes: int, max_pixels: int, formats: frozenset[str] = INPUT_FORMATS,
                max_side: int | None = None, policy: FetchPolicy = FetchPolicy()) -> Image.Image:
    """An image URL fetched through the guarded fetcher (core/fetch.py), then decoded with the same
    limits as a base64 input; the download itself stops at ``max_bytes``."""
    raw = fetch(url, policy=replace(policy, max_bytes=min(policy.max_bytes, max_bytes)), field=field)
    return open_image_bytes(raw, field=field, max_bytes=max_bytes, max_pixels=max_pixels, formats=formats,
                            max_side=max_side)
