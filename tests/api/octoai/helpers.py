"""Helpers for the OctoAI API tests."""

import base64
import io

from PIL import Image


def small(**fields) -> dict:
    """A valid, fast body for the tiny models (64x64, 2 steps)."""
    body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2}
    body.update(fields)
    return body


def b64_image(size=(64, 64), colour=(200, 40, 40), mode="RGB", fmt="PNG") -> str:
    image = Image.new(mode, size, colour)
    if mode == "RGB":  # some structure, so a canny map has edges
        for x in range(size[0] // 4, size[0] // 2):
            for y in range(size[1] // 4, 3 * size[1] // 4):
                image.putpixel((x, y), (20, 200, 60))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def detail(response) -> list[dict]:
    """The 422 body's FastAPI-shaped errors (and checks that shape)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], list) and body["detail"]
    for e in body["detail"]:
        assert set(e) == {"loc", "msg", "type"} and isinstance(e["loc"], list) and isinstance(e["msg"], str)
    return body["detail"]


def locs(response) -> list[list]:
    return [e["loc"] for e in detail(response)]
