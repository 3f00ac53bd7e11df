"""Input images for the Karlo API tests, encoded as the spec's samples encode them."""

import base64
import io

from PIL import Image, ImageDraw


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return base64.encodebytes(buf.getvalue()).decode("ascii")  # as the spec's imageToString does


def picture(size=(96, 64)) -> Image.Image:
    img = Image.new("RGB", size, (40, 90, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(230, 200, 40))
    d.line((0, 0, size[0], size[1]), fill=(255, 255, 255), width=3)
    return img


def mask_with_black_box(size=(96, 64), box=(32, 16, 64, 48)) -> Image.Image:
    """White everywhere except a black box: Karlo regenerates the black area."""
    m = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(m).rectangle(box, fill=(0, 0, 0))
    return m


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))
