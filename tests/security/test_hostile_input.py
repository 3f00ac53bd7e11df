"""Hostile and malformed input, in every dialect: each row gets a clear 4xx in the dialect's error
shape, and nothing is charged or written: every table's row count (jobs, images, credit ledger,
quota use, idempotency records) and the image store's files are the same before and after.

``GENERIC`` rows mutate any dialect's valid JSON body, so they run for every entry of ``DIALECTS``;
each dialect then adds its own rows (images, paths, uploads). A new dialect adds a ``Dialect``
and its rows. ``test_the_valid_body_is_accepted`` proves each base body is good, so a refusal
below is the mutation's doing.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable

import pytest
from PIL import Image

from tests.api.karlo.images import encode, mask_with_black_box, picture
from tests.api.studio.conftest import studio_client  # noqa: F401  (a fixture: the Studio server at small sizes)
from tests.security.state import snapshot

T2I, VARIATIONS, INPAINT = "/v2/inference/karlo/t2i", "/v2/inference/karlo/variations", "/v2/inference/karlo/inpainting"
CREATE, UPLOAD = "/api/images/create", "/api/images/upload"
JSON = "application/json"


# -- image payloads --------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG whose header declares width x height pixels, with a few bytes of (truncated) data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def wide_png(width: int, height: int = 8) -> bytes:
    return image_bytes(Image.new("1", (width, height)))  # a few hundred bytes whatever the width


def big_noise_png(n_bytes: int) -> bytes:
    """A valid PNG of at least ``n_bytes`` (random pixels do not compress)."""
    import os

    side = int((n_bytes / 3) ** 0.5) + 8
    return image_bytes(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)))


# -- dialects --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dialect:
    name: str
    client: str  # the session fixture serving it
    path: str  # a JSON POST that generates, and charges
    body: dict  # a valid body for it
    number: str  # a numeric field
    text: tuple[str, int]  # a string field and the spec's length limit
    enum: str  # a field with enumerated values
    auth: Callable[[str], dict]
    invalid: int  # the status of invalid input, as this vendor answers it
    media: int  # wrong Content-Type
    error_ok: Callable = field(default=lambda r: True)  # the vendor's error shape
    #: Parses "5" as the number 5, as the vendor's own FastAPI (pydantic's lax mode) does.
    lax_numbers: bool = False
    #: Other statuses this vendor answers some refusals with (OctoAI: 404 unknown engine/asset,
    #: 413 an image over the pixel limit).
    also: tuple[int, ...] = ()


def karlo_error(r) -> bool:
    body = r.json()
    return set(body) == {"code", "msg"} and body["code"] < 0 and isinstance(body["msg"], str) and body["msg"]


def studio_error(r) -> bool:
    body = r.json()
    return {"statusCode", "message", "error"} <= set(body) and body["statusCode"] == r.status_code and body["message"]


KARLO = Dialect("karlo", "app_client", T2I,
                {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10},
                number="guidance_scale", text=("prompt", 2048), enum="image_format",
                auth=lambda key: {"Authorization": f"KakaoAK {key}"}, invalid=400, media=400, error_ok=karlo_error)
STUDIO = Dialect("studio", "studio_client", CREATE, {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1},
                 number="styleId", text=("prompt", 1200), enum="ratio",
                 auth=lambda key: {"X-Api-Key": key}, invalid=400, media=400, error_ok=studio_error, also=(404,))
def octoai_error(r) -> bool:
    detail = r.json().get("detail")
    if r.status_code == 422:
        return bool(detail) and all({"loc", "msg", "type"} <= set(d) for d in detail)
    return isinstance(detail, str) and bool(detail)


OCTOAI = Dialect("octoai", "octoai_client", "/generate/sd",
                 {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "num_images": 1},
                 number="cfg_scale", text=("prompt", 4000), enum="sampler",
                 auth=lambda key: {"Authorization": f"Bearer {key}"}, invalid=422, media=422, error_ok=octoai_error,
                 lax_numbers=True, also=(404, 413))
DIALECTS = [KARLO, STUDIO, OCTOAI]


@pytest.fixture(scope="module")
def octoai_client(tmp_path_factory, tiny_cache):
    """An OctoAI server that also takes 64x64 (fast on the tiny models)."""
    from fastapi.testclient import TestClient

    from pixelserve.app import create_app
    from tests.conftest import make_settings, wait_ready

    settings = make_settings(tmp_path_factory.mktemp("hostile-octoai"), tiny_cache, octoai_extra_sizes="64x64")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def raw(d: Dialect, **changes) -> str:
    return json.dumps({**d.body, **changes})


def with_token(d: Dialect, name: str, token: str) -> str:
    """The body with ``name`` set to a raw JSON token that json.dumps cannot write (NaN, 1e400 ...)."""
    return raw(d, **{name: "@@"}).replace('"@@"', token)


#: (row name, body builder (dialect -> raw body), Content-Type, expected kind: "invalid" or "media")
GENERIC = [
    ("wrong content type", lambda d: raw(d), "text/plain", "media"),
    ("no content type", lambda d: raw(d), None, "media"),
    ("form content type", lambda d: raw(d), "application/x-www-form-urlencoded", "media"),
    ("not JSON", lambda d: "{version: v2.0", JSON, "invalid"),
    ("invalid UTF-8", lambda d: raw(d).encode()[:-2] + b'\xff\xfe"}', JSON, "invalid"),
    ("empty body", lambda d: "", JSON, "invalid"),
    ("a JSON array, not an object", lambda d: "[1, 2, 3]", JSON, "invalid"),
    ("a JSON string, not an object", lambda d: '"a cat"', JSON, "invalid"),
    ("deeply nested JSON (100k levels)", lambda d: with_token(d, d.text[0], "[" * 100_000 + "]" * 100_000), JSON,
     "invalid"),
    ("nested JSON (40 levels)", lambda d: with_token(d, "extra", "[" * 40 + "]" * 40), JSON, "invalid"),
    ("NaN in a number field", lambda d: with_token(d, d.number, "NaN"), JSON, "invalid"),
    ("Infinity in a number field", lambda d: with_token(d, d.number, "Infinity"), JSON, "invalid"),
    ("-Infinity in a number field", lambda d: with_token(d, d.number, "-Infinity"), JSON, "invalid"),
    ("1e400 (overflows to infinity)", lambda d: with_token(d, d.number, "1e400"), JSON, "invalid"),
    ("huge float", lambda d: with_token(d, d.number, "1.7e308"), JSON, "invalid"),
    ("400-digit integer", lambda d: with_token(d, d.number, "9" * 400), JSON, "invalid"),
    ("5000-digit integer (past Python's limit)", lambda d: with_token(d, d.number, "9" * 5000), JSON, "invalid"),
    ("negative number", lambda d: with_token(d, d.number, "-1"), JSON, "invalid"),
    ("string where a number goes", lambda d: raw(d, **{d.number: "5"}), JSON, "invalid"),
    ("string over the spec's length", lambda d: raw(d, **{d.text[0]: "x" * (d.text[1] + 1)}), JSON, "invalid"),
    ("NUL-padded string over the length", lambda d: raw(d, **{d.text[0]: "a\u0000" * d.text[1]}), JSON, "invalid"),
    ("number where a string goes", lambda d: raw(d, **{d.text[0]: 5}), JSON, "invalid"),
    ("unknown enum value", lambda d: raw(d, **{d.enum: "gif-or-2:1"}), JSON, "invalid"),
    ("enum value in another case", lambda d: raw(d, **{d.enum: str(d.body.get(d.enum, "png")).upper() + "X"}), JSON,
     "invalid"),
    ("required field missing", lambda d: json.dumps({k: v for k, v in d.body.items() if k != d.text[0]}), JSON,
     "invalid"),
]

IMAGE = encode(picture((96, 64)))
HEIC = b64(image_bytes(picture((96, 64)), "HEIF"))

#: (dialect, row name, path, JSON body) for the dialect's own fields; all "invalid".
KARLO_ROWS = [
    ("unknown version", T2I, {"version": "v9", "prompt": "a cat", "width": 384, "height": 384}),
    ("size not allowed for the version", T2I, {"version": "v2.0", "prompt": "a cat", "width": 1024, "height": 1024}),
    ("unknown scheduler", T2I, {**KARLO.body, "scheduler": "euler"}),
    ("seed over 2^32", T2I, {**KARLO.body, "seed": [2**64]}),
    ("more seeds than samples", T2I, {**KARLO.body, "seed": [1, 2]}),
    ("samples over 8", T2I, {**KARLO.body, "samples": 9}),
    ("image that is not base64", VARIATIONS, {"version": "v2.0", "image": "!!!not base64!!!", "width": 384,
                                             "height": 384}),
    ("base64 with junk inside (strict)", VARIATIONS, {"version": "v2.0", "image": IMAGE[:40] + "*$" + IMAGE[40:],
                                                      "width": 384, "height": 384}),
    ("base64 of a non-image", VARIATIONS, {"version": "v2.0", "image": b64(b"%PDF-1.4 not an image"), "width": 384,
                                           "height": 384}),
    ("truncated image", VARIATIONS, {"version": "v2.0", "image": b64(image_bytes(picture())[:200]), "width": 384,
                                     "height": 384}),
    ("HEIC where the spec does not allow it (variations)", VARIATIONS,
     {"version": "v2.0", "image": HEIC, "width": 384, "height": 384}),
    ("GIF (not an accepted format)", VARIATIONS, {"version": "v2.0", "image": b64(image_bytes(picture(), "GIF")),
                                                  "width": 384, "height": 384}),
    ("decompression bomb", VARIATIONS, {"version": "v2.0", "image": b64(png_bomb()), "width": 384, "height": 384}),
    ("image over the spec's 2048 px (variations)", VARIATIONS, {"version": "v2.0", "image": b64(wide_png(2056)),
                                                                "width": 384, "height": 384}),
    ("image over the spec's 2 MB", VARIATIONS, {"version": "v2.0", "image": b64(big_noise_png(2 * 1024 * 1024 + 1)),
                                                "width": 384, "height": 384}),
    ("image URL (not fetched)", VARIATIONS, {"version": "v2.0", "image": "http://169.254.169.254/x.png", "width": 384,
                                             "height": 384}),
    ("image over the spec's 1024 px (inpainting)", INPAINT, {"image": b64(wide_png(1032, 64)),
                                                            "mask": b64(wide_png(1032, 64))}),
    ("mask size differs from image", INPAINT, {"image": IMAGE, "mask": encode(mask_with_black_box((64, 64),
                                                                                                  (8, 8, 32, 32)))}),
    ("mask that is not an image", INPAINT, {"image": IMAGE, "mask": b64(b"garbage")}),
    ("mask marking nothing", INPAINT, {"image": IMAGE, "mask": encode(Image.new("RGB", (96, 64), "white"))}),
    ("inpainting on v2.1", INPAINT, {"version": "v2.1", "image": IMAGE, "mask": encode(mask_with_black_box())}),
]
STUDIO_ROWS = [
    ("styleId past a database integer", CREATE, {**STUDIO.body, "styleId": 2**70}),
    ("no image, style or collection", CREATE, {"prompt": "a cat", "ratio": "1:1"}),
    ("style and image together", CREATE, {**STUDIO.body, "image": "1/a.png"}),
    ("sample not 1, 2 or 4", CREATE, {**STUDIO.body, "sample": 3}),
    ("unknown field (a typo)", CREATE, {**STUDIO.body, "samples": 4}),
    *[(f"store path {p!r}", CREATE, {"prompt": "a cat", "ratio": "1:1", "sample": 1, "image": p}) for p in [
        "../1/reference.png", "1/../../etc/passwd", "/etc/passwd", "1/..", "1/.hidden.png",
        "1/..%2f..%2fetc%2fpasswd", "1/%2e%2e%2fx.png", "1/a\x00.png", "1\\..\\x.png", "1//x.png", "1/x/../y.png",
        "file:///etc/passwd", "http://169.254.169.254/x.png"]],
]
SD = "/generate/sd"
OCTOAI_ROWS = [
    ("unknown engine", "/generate/sd3", OCTOAI.body),
    ("size not in the engine's list", SD, {**OCTOAI.body, "width": 1024, "height": 1024}),
    ("unknown sampler", SD, {**OCTOAI.body, "sampler": "K_EULER_FAST"}),
    ("unknown style preset", SD, {**OCTOAI.body, "style_preset": "vaporwave-9000"}),
    ("seed list longer than num_images", SD, {**OCTOAI.body, "seed": [1, 2]}),
    ("seed over 2^32", SD, {**OCTOAI.body, "seed": 2**40}),
    ("prompt_2 on SD 1.5", SD, {**OCTOAI.body, "prompt_2": "a dog"}),
    ("init_image that is not base64", SD, {**OCTOAI.body, "init_image": "!!!not base64!!!"}),
    ("init_image of a non-image", SD, {**OCTOAI.body, "init_image": b64(b"%PDF-1.4 not an image")}),
    ("truncated init_image", SD, {**OCTOAI.body, "init_image": b64(image_bytes(picture())[:200])}),
    ("decompression bomb", SD, {**OCTOAI.body, "init_image": b64(png_bomb())}),
    ("init_image URL (not fetched)", SD, {**OCTOAI.body, "init_image": "http://169.254.169.254/x.png"}),
    ("mask without an init_image", SD, {**OCTOAI.body, "mask_image": IMAGE}),
    ("strength over 1", SD, {**OCTOAI.body, "init_image": IMAGE, "strength": 1.5}),
    ("unknown LoRA asset", SD, {**OCTOAI.body, "loras": {"no-such-lora": 0.5}}),
    ("asset name with a path", SD, {**OCTOAI.body, "loras": {"../../etc/passwd": 0.5}}),
    ("asset name with a NUL byte", SD, {**OCTOAI.body, "checkpoint": "a\u0000b"}),
    ("absolute path as a VAE", SD, {**OCTOAI.body, "vae": "/etc/passwd"}),
    ("ControlNet engine without controlnet", "/generate/controlnet-sd15", OCTOAI.body),
]
ROWS = ([(KARLO, *row) for row in KARLO_ROWS] + [(STUDIO, *row) for row in STUDIO_ROWS]
        + [(OCTOAI, *row) for row in OCTOAI_ROWS])


# -- the tests ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(request):
    """One API key per dialect's server, its credit account opened (so a first read adds no rows later)."""
    from pixelserve.db.crud.keys import create_key

    out = {}
    for d in DIALECTS:
        client = request.getfixturevalue(d.client)
        with client.app.state.sessions() as s:
            _, key = create_key(s, f"hostile {d.name}", client.app.state.auth.secret)
        client.get("/api/credits", headers={"X-Api-Key": key})
        out[d.name] = key
    return out


def send(request, keys, d: Dialect, path: str, content: bytes | str, content_type: str | None, **extra):
    client = request.getfixturevalue(d.client)
    headers = {**d.auth(keys[d.name]), **extra.pop("headers", {})}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = snapshot(client.app)
    r = client.post(path, content=content, headers=headers, **extra)
    return r, before, snapshot(client.app)


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
def test_the_valid_body_is_accepted(request, keys, d):
    r, before, after = send(request, keys, d, d.path, raw(d), JSON)
    assert r.status_code == 200, r.text
    assert after != before  # a real request does write: the snapshot would see it


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("name, build, content_type, kind", GENERIC, ids=[g[0] for g in GENERIC])
def test_generic_hostile_body_is_refused_and_changes_nothing(request, keys, d, name, build, content_type, kind):
    r, before, after = send(request, keys, d, d.path, build(d), content_type)
    if d.lax_numbers and name == "string where a number goes":  # "5" is the number 5 there: it generates
        assert r.status_code == 200 and after != before, r.text[:300]
        return
    assert r.status_code == getattr(d, kind), r.text[:300]
    assert d.error_ok(r), r.text[:300]
    if kind == "media":
        assert "Content-Type" in r.text
    assert after == before


@pytest.mark.parametrize("d, name, path, body", ROWS, ids=[f"{r[0].name}-{r[1]}" for r in ROWS])
def test_dialect_hostile_input_is_refused_and_changes_nothing(request, keys, d, name, path, body):
    r, before, after = send(request, keys, d, path, json.dumps(body), JSON)
    assert r.status_code in (d.invalid, *d.also), r.text[:300]
    assert d.error_ok(r), r.text[:300]
    assert after == before


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_413_and_changes_nothing(request, keys, d, declared):
    client = request.getfixturevalue(d.client)
    state = client.app.state
    old, state.max_body_bytes = state.max_body_bytes, 4096
    try:
        body = raw(d, **{d.text[0]: "a" * 5000}).encode()
        if declared:
            r, before, after = send(request, keys, d, d.path, body, JSON)
        else:  # no Content-Length: the stream is cut once it passes the limit
            r, before, after = send(request, keys, d, d.path, iter([body[:3000], body[3000:]]), JSON)
    finally:
        state.max_body_bytes = old
    assert r.status_code == 413, r.text[:300]
    assert d.error_ok(r) and "bytes" in r.text
    assert after == before


UPLOADS = [
    ("not an image", ("x.png", b"not an image", "image/png"), 400),
    ("truncated PNG", ("x.png", image_bytes(picture())[:200], "image/png"), 400),
    ("HEIC (not accepted for uploads)", ("x.heic", base64.b64decode(HEIC), "image/heic"), 400),
    ("GIF", ("x.gif", image_bytes(picture(), "GIF"), "image/gif"), 400),
    ("PNG named .jpg, content decides", ("x.jpg", b"%PDF-1.4", "image/jpeg"), 400),
    ("decompression bomb", ("bomb.png", png_bomb(), "image/png"), 413),
    ("over the pixel limit", ("big.png", wide_png(4200, 4200), "image/png"), 413),
    ("over 10 MB", ("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024 + 1), "image/png"), 413),
]


@pytest.mark.parametrize("name, file, status", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_studio_hostile_uploads_are_refused_and_store_nothing(request, keys, name, file, status):
    client = request.getfixturevalue("studio_client")
    before = snapshot(client.app)
    r = client.post(UPLOAD, files={"file": file}, headers=STUDIO.auth(keys["studio"]))
    assert r.status_code == status, r.text[:300]
    assert studio_error(r)
    assert snapshot(client.app) == before
