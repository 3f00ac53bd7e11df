"""Signed, expiring image URLs: ``/v1/images/<key>?expires=<unix>&signature=<hmac>``.

The HMAC covers the key and the expiry, so neither can be changed; after ``expires`` the URL
answers 403. Anyone holding the URL can fetch the image until then, as with the vendor's CDN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

from pixelserve.errors import Forbidden

IMAGE_ROUTE = "/v1/images/"


class UrlSigner:
    def __init__(self, secret: bytes, ttl_seconds: int, clock=None):
        self._secret = secret
        self.ttl = ttl_seconds
        self.clock = clock or time.time  # replaceable: tests freeze it

    def _mac(self, key: str, expires: int, method: str = "GET") -> str:
        # A GET signature cannot be replayed as an upload: PUT URLs sign their method too.
        message = f"{key}\n{expires}" if method == "GET" else f"{method}\n{key}\n{expires}"
        mac = hmac.new(self._secret, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, base_url: str, key: str, ttl: int | None = None) -> str:
        """The signed image URL of ``key``."""
        return f"{base_url.rstrip('/')}{IMAGE_ROUTE}{quote(key)}?{self.query(key, ttl=ttl)}"

    def query(self, key: str, method: str = "GET", ttl: int | None = None) -> str:
        """``expires=...&signature=...`` for any route's ``key`` (e.g. ``upload:<asset id>``; image keys
        never contain ':', so one route's signature never opens another's)."""
        expires = int(self.clock()) + (ttl or self.ttl)
        return f"expires={expires}&signature={self._mac(key, expires, method)}"

    def verify(self, key: str, expires: int, signature: str, method: str = "GET") -> None:
        what = "URL" if method == "GET" else f"{method} URL"
        # bytes: compare_digest refuses non-ASCII str, and a signature is whatever the caller sent
        if not hmac.compare_digest(self._mac(key, expires, method).encode(),
                                   (signature or "").encode("utf-8", "replace")):
            raise Forbidden(f"invalid {what} signature")
        if self.clock() > expires:
            raise Forbidden(f"{what} expired")
