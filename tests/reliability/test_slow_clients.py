"""Slow clients cannot hold the server: hundreds of connections trickling their headers, and some
stalling mid-body, while a normal caller is served at once; the trickling ones are cut off at the
header deadline (408, connection closed), the stalled bodies answered 408 in the dialect's shape.
A real server on 127.0.0.1 (the configuration ``pixelserve serve`` runs with), loopback traffic only,
bounded in count and time."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.serving import server_config
from tests.conftest import make_settings
from tests.security.test_fuzz import InstantEngine

SLOW_HEADERS = 300
SLOW_BODIES = 20
DEADLINE = 2.0


@pytest.fixture
def server(tmp_path, tiny_cache):
    settings = make_settings(tmp_path, tiny_cache, header_read_timeout_seconds=DEADLINE,
                             body_read_timeout_seconds=DEADLINE, max_connections=1000, octoai_extra_sizes="64x64")
    app = create_app(settings, engine=InstantEngine())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    with app.state.sessions() as s:
        _, key = create_key(s, "slow", app.state.auth.secret)
    yield port, key
    server.should_exit = True
    thread.join(30)


def closed_by_server(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing the connection; None if it is still open after ``timeout``."""
    sock.settimeout(timeout)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return got


def test_slow_clients_are_cut_off_and_a_normal_caller_is_served(server):
    port, key = server
    raw = json.dumps({"prompt": "a cat", "width": 64, "height": 64, "steps": 2}).encode()
    trickling, stalled = [], []
    try:
        for _ in range(SLOW_HEADERS):  # the request line and one header, never the end of the headers
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /generate/sd HTTP/1.1\r\nHost: x\r\n")
            trickling.append(s)
        for _ in range(SLOW_BODIES):  # complete headers, half the body, then nothing
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"POST /generate/sd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {key}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
                      + raw[: len(raw) // 2])
            stalled.append(s)
        started = time.monotonic()
        r = httpx.post(f"http://127.0.0.1:{port}/generate/sd", json=json.loads(raw),
                       headers={"Authorization": f"Bearer {key}"}, timeout=DEADLINE)
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < DEADLINE  # served while every slow connection is still open
        for s in trickling[:5]:  # still trickling: one more header byte does not buy more time
            s.sendall(b"X")
        time.sleep(max(0.0, started + DEADLINE + 1 - time.monotonic()))  # past every deadline
        for s in trickling:
            answer = closed_by_server(s, timeout=2)
            assert answer is not None, "a connection trickling its headers was kept open"
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        for s in stalled:
            answer = closed_by_server(s, timeout=2)
            assert answer is not None, "a connection stalled mid-body was kept open"
            status, _, rest = answer.partition(b"\r\n")
            assert status.startswith(b"HTTP/1.1 408"), answer[:200]
            body = json.loads(rest.partition(b"\r\n\r\n")[2])
            assert "not received within" in body["detail"]  # OctoAI's error shape
    finally:
        for s in trickling + stalled:
            s.close()
