import base64
import io

import pytest
from PIL import Image

from pixelserve.core.images import decode_base64_image, encode_image, fit
from pixelserve.errors import InvalidRequest, PayloadTooLarge


def png_b64(size=(32, 16), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, "red").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("fmt, pil", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encode_roundtrip(fmt, pil):
    data = encode_image(Image.new("RGB", (40, 24), "blue"), fmt, 80)
    im = Image.open(io.BytesIO(data))
    assert (im.format, im.size) == (pil, (40, 24))


@pytest.mark.parametrize("mode, size", [("RGB", (37, 23)), ("RGBA", (16, 9)), ("RGB", (5, 1)), ("L", (12, 7))])
def test_png_is_lossless_for_every_mode(mode, size):
    import numpy as np

    pixels = np.random.default_rng(3).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode)
    decoded = Image.open(io.BytesIO(encode_image(image, "png")))
    decoded.load()  # checks every chunk's CRC and the zlib stream
    assert decoded.format == "PNG" and decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_decode_plain_newlines_and_data_url():
    b64 = png_b64()
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))  # base64.encodebytes style
    for value in (b64, wrapped, "data:image/png;base64," + b64):
        im = decode_base64_image(value, field="image", max_bytes=10**6, max_pixels=10**6)
        assert im.size == (32, 16) and im.mode == "RGB"


@pytest.mark.parametrize("value", ["", "!!!notbase64", base64.b64encode(b"not an image").decode()])
def test_decode_rejects_garbage(value):
    with pytest.raises(InvalidRequest) as e:
        decode_base64_image(value, field="image", max_bytes=10**6, max_pixels=10**6)
    assert e.value.field == "image"


def test_decode_limits_bytes_and_pixels_before_decoding():
    with pytest.raises(PayloadTooLarge):
        decode_base64_image(png_b64(), field="image", max_bytes=20, max_pixels=10**6)
    with pytest.raises(PayloadTooLarge):
        decode_base64_image(png_b64((200, 200)), field="image", max_bytes=10**6, max_pixels=100 * 100)


def test_fit_crops_to_the_ratio_then_resizes():
    wide = Image.new("RGB", (200, 100), "red")
    wide.paste((0, 0, 255), (0, 0, 50, 100))  # a blue band on the left, cropped away
    out = fit(wide.convert("RGBA"), 64, 64)
    assert out.size == (64, 64) and out.mode == "RGB"
    assert out.getpixel((8, 32)) == (255, 0, 0)
