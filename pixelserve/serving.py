"""The uvicorn configuration ``pixelserve serve`` runs with: slow clients cannot hold the server.

uvicorn closes an idle kept-alive connection (``timeout_keep_alive``) and answers 503 past
``limit_concurrency`` connections, but waits for a request's headers forever: a client that
connects and sends its headers a byte at a time (slowloris) keeps its connection, and enough of
them fill the connection limit. ``HeaderDeadlineProtocol`` closes a connection whose request
headers are not complete within ``header_read_timeout_seconds`` of its first byte (or of the
connection, for the first request), after a bare 408: no dialect is known before the headers. The
body has its own deadline in the dialects' routes (``body_read_timeout_seconds``: 408 in the
dialect's shape).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pixelserve.settings import Settings

TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(TIMEOUT_ANSWER)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a kept-alive connection (already armed for the first one)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_config(app: Any, settings: Settings, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    trusted = [str(n) for n in settings.trusted_networks]
    return uvicorn.Config(
        app, host=host, port=port,
        http=functools.partial(HeaderDeadlineProtocol, header_timeout=settings.header_read_timeout_seconds),
        limit_concurrency=settings.max_connections or None,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        timeout_graceful_shutdown=settings.drain_timeout_seconds,
        # X-Forwarded-For/-Proto are believed only from PIXELSERVE_TRUSTED_PROXIES (uvicorn's default
        # would trust any local process).
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
        **kwargs,
    )
