"""Hostile and malformed input, Karlo dialect: each row gets a clear 4xx in Kakao's error shape,
and nothing is recorded or counted (no job row, no quota use).

The table is per dialect so the OctoAI and Studio dialects can add their rows beside Karlo's.
"""

import base64
import io
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy import func, select

from pixelserve.db.models import Job, UsageEvent
from tests.api.karlo.images import encode, mask_with_black_box, picture

T2I, VARIATIONS, INPAINT = "/v2/inference/karlo/t2i", "/v2/inference/karlo/variations", "/v2/inference/karlo/inpainting"
JSON = {"Content-Type": "application/json"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG whose header declares width x height pixels, with a few bytes of (truncated) data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


T2I_OK = '{"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10'
IMAGE = encode(picture((96, 64)))

# (name, path, raw body bytes or a dict, extra headers, expected HTTP status, expected Kakao code)
KARLO_ROWS = [
    ("wrong content type", T2I, T2I_OK + "}", {"Content-Type": "text/plain"}, 400, -8),
    ("not JSON", T2I, "{version: v2.0", JSON, 400, -2),
    ("a JSON array, not an object", T2I, "[1, 2, 3]", JSON, 400, -2),
    ("deeply nested JSON", T2I, '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}", JSON, 400, -2),
    ("NaN in a number field", T2I, T2I_OK + ', "prior_guidance_scale": NaN}', JSON, 400, -2),
    ("Infinity in a number field", T2I, T2I_OK + ', "guidance_scale": Infinity}', JSON, 400, -2),
    ("-Infinity", T2I, T2I_OK + ', "prior_guidance_scale": -Infinity}', JSON, 400, -2),
    ("huge integer", T2I, T2I_OK.replace('"width": 384', '"width": ' + "9" * 400) + "}", JSON, 400, -2),
    ("seed over 2^32", T2I, T2I_OK + ', "seed": [18446744073709551616]}', JSON, 400, -2),
    ("negative samples", T2I, T2I_OK + ', "samples": -1}', JSON, 400, -2),
    ("float where an int is required", T2I, T2I_OK + ', "samples": 1.5}', JSON, 400, -2),
    ("prompt over the length limit", T2I, {"version": "v2.0", "prompt": "x" * 2049}, JSON, 400, -2),
    ("unknown version", T2I, {"version": "v9", "prompt": "a cat"}, JSON, 400, -2),
    ("unknown image format", T2I, T2I_OK + ', "image_format": "gif"}', JSON, 400, -2),
    ("unknown return type", T2I, T2I_OK + ', "return_type": "ftp"}', JSON, 400, -2),
    ("NUL bytes in the prompt", T2I, {"version": "v2.0", "prompt": "a\u0000cat" * 2000}, JSON, 400, -2),
    ("image that is not base64", VARIATIONS, {"version": "v2.0", "image": "!!!not base64!!!"}, JSON, 400, -2),
    ("base64 of a non-image", VARIATIONS, {"version": "v2.0", "image": b64(b"%PDF-1.4 not an image")}, JSON, 400, -2),
    ("truncated image", VARIATIONS, {"version": "v2.0", "image": b64(png_bytes(picture())[:200])}, JSON, 400, -2),
    ("decompression bomb", VARIATIONS, {"version": "v2.0", "image": b64(png_bomb())}, JSON, 400, -2),
    ("image URL (not fetched)", VARIATIONS, {"version": "v2.0", "image": "http://169.254.169.254/x.png"}, JSON, 400, -2),
    ("mask size differs from image", INPAINT, {"image": IMAGE, "mask": encode(mask_with_black_box((64, 64), (8, 8, 32, 32)))},
     JSON, 400, -2),
    ("mask that is not an image", INPAINT, {"image": IMAGE, "mask": b64(b"garbage")}, JSON, 400, -2),
]


def counts(client) -> tuple[int, int]:
    with client.app.state.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Job)),
                s.scalar(select(func.count()).select_from(UsageEvent)))


@pytest.mark.parametrize("name, path, body, headers, status, code", KARLO_ROWS, ids=[r[0] for r in KARLO_ROWS])
def test_karlo_refuses_hostile_input_and_records_nothing(app_client, api_key, name, path, body, headers,
                                                         status, code):
    import json

    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    before = counts(app_client)
    r = app_client.post(path, content=raw, headers={"Authorization": f"KakaoAK {api_key}", **headers})
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json()["msg"]
    assert counts(app_client) == before


def test_body_over_the_limit_is_refused_before_it_is_all_read(tmp_path, tiny_cache):
    """A real server: a chunked body (no Content-Length) far over the limit gets its 400 while the
    client is still sending, so the server never reads (or buffers) the rest."""
    import select
    import socket

    from pixelserve.app import create_app
    from pixelserve.db.crud.keys import create_key
    from tests.conftest import make_settings
    from tests.security.live import live_server

    app = create_app(make_settings(tmp_path, tiny_cache, max_body_bytes=64 * 1024))
    with live_server(app) as port:
        with app.state.sessions() as session:
            _, key = create_key(session, "limit")
        total, sent, answer = 64 * 1024 * 1024, 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall((f"POST {T2I} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: KakaoAK {key}\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
            try:
                while sent < total and not select.select([sock], [], [], 0)[0]:
                    sock.sendall(chunk)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.settimeout(10)
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b'"code":-2' in body and b"bytes" in body
        assert sent < total // 4  # refused long before the client finished sending
