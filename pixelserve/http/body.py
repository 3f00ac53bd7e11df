"""Request bodies: read within the size limit, and JSON parsed strictly."""

from __future__ import annotations

import asyncio
import json
import math
import unicodedata
from typing import Any

from fastapi import Request

from pixelserve.errors import BodyTooLarge, InvalidRequest, RequestTimeout

#: Deeper JSON than this is refused: no wire format here nests more than a few levels.
MAX_JSON_DEPTH = 32


def check_length(request: Request, limit: int) -> None:
    """BodyTooLarge when the declared Content-Length is over ``limit`` bytes (nothing is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body over {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (BodyTooLarge) as soon as more than ``limit`` bytes arrive (the rest never
    read), or (RequestTimeout) past the app's body-read deadline: a stalled client does not hold a
    request open."""
    seconds = getattr(request.app.state, "body_read_timeout", None)
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {seconds:g} s") from None
    return bytes(body)


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"{name} is not a JSON number (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity
        raise InvalidRequest(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no integers past Python's digit limit, at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(body, parse_constant=_no_constants, parse_float=_finite)
    except InvalidRequest:
        raise
    except RecursionError:
        raise InvalidRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError, an integer over 4300 digits, bad UTF-8
        raise InvalidRequest("body is not valid JSON") from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return value


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def nfc(value: Any) -> Any:
    """For ``BeforeValidator`` on enum-like wire strings (style presets, sampler names): Unicode NFC, so
    "Pokémon" matches whether the client sent the "é" as one code point or as "e" + a combining accent."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def not_blank(value: str) -> str:
    """For ``AfterValidator`` in wire models: a text field must hold more than white space."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value
