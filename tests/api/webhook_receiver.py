"""A webhook receiver for tests: a small HTTP server on 127.0.0.1 that records every POST and answers
each path with the statuses it was told, in order (the last one repeats)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[int]] = {}
        self.extra_headers: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.monotonic()))
                    statuses = receiver.answers.get(self.path, [200])
                    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                self.send_response(status)
                for k, v in receiver.extra_headers.get(self.path, {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, path: str, *statuses: int, headers: dict[str, str] | None = None) -> str:
        """Answers POSTs to ``path`` with ``statuses`` in turn; returns the path's URL."""
        with self._lock:
            self.answers[path] = list(statuses) or [200]
            if headers:
                self.extra_headers[path] = headers
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} of {count} deliveries arrived")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
