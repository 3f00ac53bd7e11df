"""A real uvicorn server for an app, in a thread on a free 127.0.0.1 port (tests that need real
sockets: streaming bodies, generated traffic)."""

import contextlib
import socket
import threading
import time
from types import SimpleNamespace

import uvicorn


@contextlib.contextmanager
def live_server(app):
    """Yields the server's port once it accepts connections; stops it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def wait_engine_ready(app, timeout: float = 120) -> None:
    """Returns once the app's engine has loaded its models (a live server answers before that)."""
    deadline = time.monotonic() + timeout
    while not app.state.engine.health().ready:
        assert time.monotonic() < deadline, "engine not ready"
        time.sleep(0.1)


@contextlib.contextmanager
def served(app, key_name: str = "tests"):
    """The app on a live server with its models loaded and one API key: yields
    ``SimpleNamespace(base, key, key_id, app)``."""
    from pixelserve.db.crud.keys import create_key

    with live_server(app) as port:
        wait_engine_ready(app)
        with app.state.sessions() as s:
            row, key = create_key(s, key_name, app.state.auth.secret)
        yield SimpleNamespace(base=f"http://127.0.0.1:{port}", key=key, key_id=row.id, app=app)
