"""Helpers for the Studio API tests."""

from __future__ import annotations

import base64
import io

from PIL import Image

CREATE = "/api/images/create"


def png_bytes(size=(64, 64), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def upload(client, headers, data: bytes | None = None) -> str:
    r = client.post("/api/images/upload", headers=headers,
                    files={"file": ("ref.png", data or png_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    return r.json()["path"]


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def balances(client, headers) -> dict:
    r = client.get("/api/credits", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()
