"""core/fetch.post, as webhooks use it: the address rule (lifted by allow_private, never for cloud
metadata), no redirect followed, the answer read up to max_bytes, failures to get an answer told
apart (Unreachable: retry) from refusals. And the sender's backoff and Retry-After reading."""

import http.server
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from pixelserve.core.fetch import FetchPolicy, Unreachable, post
from pixelserve.errors import InvalidRequest
from pixelserve.service import webhook_sender
from pixelserve.service.webhooks import target_policy

PRIVATE_OK = FetchPolicy(allow_private=True, timeout_s=1, max_bytes=1000)


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Handler.seen.append((self.path, body, self.headers.get("x-test")))
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()  # no Content-Length, a long body: only max_bytes of it is read
            try:
                for _ in range(1000):
                    self.wfile.write(b"x" * 1000)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/slow":
            time.sleep(3)
        else:
            self.send_response(204)
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_post_sends_the_body_and_returns_any_status_without_following_redirects(server):
    answer = post(server + "/ok", b'{"a":1}', {"x-test": "yes"}, policy=PRIVATE_OK)
    assert answer.status == 204 and Handler.seen[-1] == ("/ok", b'{"a":1}', "yes")
    seen = len(Handler.seen)
    assert post(server + "/redirect", b"{}", {}, policy=PRIVATE_OK).status == 307
    assert len(Handler.seen) == seen + 1  # /ok was not asked for


def test_post_reads_the_answer_only_up_to_max_bytes(server):
    answer = post(server + "/big", b"{}", {}, policy=PRIVATE_OK)
    assert answer.status == 200 and len(answer.body) == 1000


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://10.0.0.1/", "http://[::1]:9/", "http://192.168.0.1/"])
def test_private_targets_are_refused_by_default(url):
    with pytest.raises(InvalidRequest, match="not a public address") as e:
        post(url, b"{}", {}, policy=target_policy(allow_private=False), field="webhook_url")
    assert not isinstance(e.value, Unreachable) and e.value.field == "webhook_url"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/"])
def test_cloud_metadata_stays_refused_when_private_is_allowed(url):
    with pytest.raises(InvalidRequest, match="not a public address"):
        post(url, b"{}", {}, policy=target_policy(allow_private=True))


def test_no_answer_is_unreachable(server):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(Unreachable, match="connection failed"):
        post(f"http://127.0.0.1:{closed}/", b"{}", {}, policy=PRIVATE_OK)
    with pytest.raises(Unreachable, match="no answer within 1 s"):
        post(server + "/slow", b"{}", {}, policy=PRIVATE_OK)


def test_backoff_grows_with_jitter_up_to_its_cap(monkeypatch):
    monkeypatch.setattr(webhook_sender, "BACKOFF_FIRST_S", 4.0)
    monkeypatch.setattr(webhook_sender, "BACKOFF_MAX_S", 60.0)
    for attempts, base in ((1, 4), (2, 8), (3, 16), (10, 60)):
        waits = {webhook_sender.backoff(attempts) for _ in range(50)}
        assert all(base / 2 <= w <= base for w in waits) and len(waits) > 1


def test_retry_after_takes_seconds_or_a_date():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert webhook_sender.retry_after("120", now) == 120
    assert webhook_sender.retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert webhook_sender.retry_after("soon", now) is None and webhook_sender.retry_after(None, now) is None
