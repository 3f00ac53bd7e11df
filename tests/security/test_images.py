"""Image inputs (core/images.py, shared by every dialect): strict base64, formats by content,
decompression bombs refused by the pixel limit before a single pixel is decoded, URL inputs only
through the guarded fetcher with the same limits."""

import base64
import http.server
import io
import threading

import pytest
from PIL import Image, ImageFile

from pixelserve.core.fetch import FetchPolicy
from pixelserve.core.images import HEIF_FORMATS, INPUT_FORMATS, decode_base64_image, fetch_image, open_image_bytes
from pixelserve.errors import InvalidRequest, PayloadTooLarge
from tests.security.test_hostile_input import image_bytes, png_bomb, wide_png

LIMITS = dict(max_bytes=2 * 1024 * 1024, max_pixels=4096 * 4096)


def jpeg_bomb(side: int = 65_000) -> bytes:
    """A small JPEG whose frame header (SOF0) claims side x side pixels."""
    data = bytearray(image_bytes(Image.new("RGB", (16, 16), "red"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = side.to_bytes(2, "big") * 2  # height, width
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any image is decoded (ImageFile.load is where pixel data is read)."""
    def refuse(self):
        raise AssertionError(f"decoded a {self.size} image")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("bomb", [png_bomb(), png_bomb(5000, 5000), wide_png(4200, 4200), jpeg_bomb()],
                         ids=["png-60000-truncated", "png-5000-truncated", "png-4200-valid", "jpeg-65000"])
def test_decompression_bombs_are_refused_before_decoding(bomb, no_decoding):
    assert len(bomb) < 20_000  # small files ...
    with pytest.raises(PayloadTooLarge, match="pixels") as e:  # ... whose declared size is refused
        open_image_bytes(bomb, field="image", **LIMITS)
    assert e.value.field == "image"


def test_the_side_limit_is_checked_before_decoding(no_decoding):
    with pytest.raises(InvalidRequest, match="2048 px"):
        open_image_bytes(wide_png(2056), field="image", **LIMITS, max_side=2048)


PNG = base64.b64encode(image_bytes(Image.new("RGB", (8, 8), "blue"))).decode()


@pytest.mark.parametrize("value", [
    PNG[:20] + "$" + PNG[20:],  # a character outside the alphabet
    PNG[:-1],  # padding cut
    PNG.replace("+", "-").replace("/", "_") if ("+" in PNG or "/" in PNG) else PNG[:10] + "-_" + PNG[12:],  # urlsafe
    PNG + "====",  # padding past the end
    "data:image/png;base64," + PNG[:-2] + "!!",
])
def test_base64_is_decoded_strictly(value):
    with pytest.raises(InvalidRequest, match="base64"):
        decode_base64_image(value, field="image", **LIMITS)


def test_formats_are_decided_by_content():
    png = image_bytes(Image.new("RGB", (8, 8)))
    with pytest.raises(InvalidRequest, match="jpeg"):
        open_image_bytes(png, field="image", **LIMITS, formats=frozenset({"JPEG"}))
    heic = image_bytes(Image.new("RGB", (64, 64)), "HEIF")
    with pytest.raises(InvalidRequest):
        open_image_bytes(heic, field="image", **LIMITS)  # HEIC only where a caller allows it
    assert open_image_bytes(heic, field="image", **LIMITS, formats=INPUT_FORMATS | HEIF_FORMATS).size == (64, 64)


class ImageServer(http.server.BaseHTTPRequestHandler):
    files = {"/ok.png": image_bytes(Image.new("RGB", (20, 10), "green")), "/bomb.png": png_bomb(),
             "/big.png": b"\x89PNG" + b"\x00" * 3_000_000, "/notes.txt": b"hello"}

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOCAL = FetchPolicy(allow_loopback=True, timeout_s=5)


def test_an_image_url_is_fetched_and_decoded(image_server):
    assert fetch_image(image_server + "/ok.png", field="image_url", **LIMITS, policy=LOCAL).size == (20, 10)


@pytest.mark.parametrize("path, error, match", [
    ("/bomb.png", PayloadTooLarge, "pixels"), ("/big.png", PayloadTooLarge, "bytes"),
    ("/notes.txt", InvalidRequest, "readable image"), ("/missing.png", InvalidRequest, "404"),
])
def test_image_urls_get_the_same_limits(image_server, path, error, match):
    with pytest.raises(error, match=match) as e:
        fetch_image(image_server + path, field="image_url", **LIMITS, policy=LOCAL)
    assert e.value.field == "image_url"


def test_image_urls_to_private_addresses_are_refused_by_default(image_server):
    with pytest.raises(InvalidRequest, match="not a public address"):
        fetch_image(image_server + "/ok.png", field="image_url", **LIMITS)
