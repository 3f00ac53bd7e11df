"""The guarded URL fetcher: no private addresses (however spelled), redirects re-checked, the
checked address is the one connected to, size and time capped. Local servers on 127.0.0.1 only."""

import http.server
import socket
import threading
import time

import pytest

from pixelserve.core.fetch import FetchPolicy, fetch
from pixelserve.errors import InvalidRequest, PayloadTooLarge

LOOPBACK_OK = FetchPolicy(allow_loopback=True, timeout_s=2, max_bytes=1000)


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        Handler.seen.append((self.path, self.headers.get("Host")))
        if self.path == "/ok":
            self._send(200, b"PNGDATA")
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must cut the stream
            try:
                for _ in range(1000):
                    self.wfile.write(b"x" * 1000)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(4)
            self._send(200, b"late")
        elif self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect/").replace("_", "/", 2)
                             .replace("http/", "http://").replace("file/", "file://"))
            self.end_headers()
        elif self.path.startswith("/loop/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/loop/{n + 1}")
            self.end_headers()
        else:
            self._send(404, b"")

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("url", [
    "{base}/ok", "http://localhost:{port}/ok", "http://[::1]:{port}/ok", "http://10.0.0.1/", "http://192.168.1.1/",
    "http://172.16.0.1/", "http://100.64.0.1/", "http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/",
    "http://0.0.0.0:{port}/ok", "http://2130706433:{port}/ok", "http://0x7f.1:{port}/ok", "http://017700000001:{port}/ok",
    "http://[::ffff:127.0.0.1]:{port}/ok", "http://[fe80::1]/", "http://224.0.0.1/",
    "file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/x", "http://user:pass@example.com/",
    "http:///nohost",
])
def test_default_policy_refuses_without_connecting(server, url):
    port = server.rsplit(":", 1)[1]
    Handler.seen.clear()
    with pytest.raises(InvalidRequest) as e:
        fetch(url.format(base=server, port=port), policy=FetchPolicy(timeout_s=2), field="image")
    assert e.value.field == "image"
    assert Handler.seen == []


def test_a_public_address_is_fetched_and_the_checked_ip_is_the_one_connected(server, monkeypatch):
    """Pretend 'images.example' resolves to a public address, and route that address to the local
    server: the request reaches the checked IP with the original Host header."""
    port = int(server.rsplit(":", 1)[1])
    public = "93.184.216.34"

    def resolver(host, p, type=0):
        assert host == "images.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (public, p))]

    real_connect = socket.create_connection
    dialled = []

    def connect(address, *args, **kwargs):  # the transport dials the checked IP; send it to our server
        dialled.append(address[0])
        return real_connect(("127.0.0.1", port), *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    Handler.seen.clear()
    assert fetch(f"http://images.example:{port}/ok", resolver=resolver) == b"PNGDATA"
    assert dialled == [public]
    assert Handler.seen == [("/ok", f"images.example:{port}")]


def test_dns_rebinding_to_a_private_address_is_refused(server):
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def rebinding(host, p, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), p))]

    rebinding("x", 80)  # the "first" lookup someone else made; ours gets the private answer
    Handler.seen.clear()
    with pytest.raises(InvalidRequest):
        fetch(f"http://rebind.example:{server.rsplit(':', 1)[1]}/ok", resolver=rebinding)
    assert Handler.seen == []


def test_a_name_with_any_private_address_is_refused():
    def mixed(host, p, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", p)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", p))]

    with pytest.raises(InvalidRequest):
        fetch("http://mixed.example/x", resolver=mixed)


def test_loopback_test_policy_fetches(server):
    assert fetch(server + "/ok", policy=LOOPBACK_OK) == b"PNGDATA"


@pytest.mark.parametrize("path", ["/big", "/declared-big"])
def test_bodies_over_the_cap_are_cut(server, path):
    with pytest.raises(PayloadTooLarge):
        fetch(server + path, policy=LOOPBACK_OK)


def test_a_slow_server_hits_the_time_cap(server):
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match="took over"):
        fetch(server + "/slow", policy=FetchPolicy(allow_loopback=True, timeout_s=1))
    assert time.monotonic() - started < 3


def test_too_many_redirects(server):
    with pytest.raises(InvalidRequest, match="redirects"):
        fetch(server + "/loop/0", policy=LOOPBACK_OK)


@pytest.mark.parametrize("target", ["http_10.0.0.1_x", "http_169.254.169.254_latest", "file__etc_passwd"])
def test_every_redirect_hop_is_checked_again(server, target):
    with pytest.raises(InvalidRequest):
        fetch(f"{server}/redirect/{target}", policy=LOOPBACK_OK)


def test_error_statuses_are_refused(server):
    with pytest.raises(InvalidRequest, match="404"):
        fetch(server + "/missing", policy=LOOPBACK_OK)
