"""Failed-authentication limits: past a burst of 401s an address (or a key prefix) gets 429 with
Retry-After in its dialect's shape, before its body is read; a caller with a valid key never does."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.service.auth_limits import AuthLimiter, TokenBuckets, credential_of
from pixelserve.settings import parse_networks
from tests.conftest import make_settings
from tests.security.test_fuzz import InstantEngine

PROXY = "10.0.0.1"  # the test client's address: a trusted proxy, so X-Forwarded-For names the client
BURST = 3


@dataclass(frozen=True)
class Dialect:
    name: str
    method: str
    path: str
    body: dict | None
    post_path: str  # a POST endpoint that reads a body

    def headers(self, key: str, address: str) -> dict[str, str]:
        auth = {"karlo": {"Authorization": f"KakaoAK {key}"}, "octoai": {"Authorization": f"Bearer {key}"},
                "studio": {"X-Api-Key": key}}[self.name]
        return {**auth, "X-Forwarded-For": address}

    def send(self, client: TestClient, key: str, address: str, **kw):
        return client.request(self.method, self.path, json=self.body, headers={**self.headers(key, address),
                                                                              **kw.pop("headers", {})}, **kw)

    def assert_throttled(self, r) -> None:
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60 * BURST
        body = r.json()
        if self.name == "karlo":
            assert body["code"] == -10 and "failed authentications" in body["msg"]
        elif self.name == "octoai":
            assert "failed authentications" in body["detail"]
        else:
            assert body["statusCode"] == 429 and body["error"] == "Too Many Requests"
            assert "failed authentications" in body["message"]


DIALECTS = [
    Dialect("karlo", "POST", "/v2/inference/karlo/t2i",
            {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10},
            "/v2/inference/karlo/t2i"),
    Dialect("octoai", "GET", "/v1/assets", None, "/generate/sd"),
    Dialect("studio", "GET", "/api/credits", None, "/api/images/create"),
]


def bogus() -> str:
    return "ps_" + secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("limits"), tiny_cache, auth_fail_burst=BURST,
                             auth_fail_per_minute=1, trusted_proxies=PROXY, auth_fail_delay_seconds=0)
    app = create_app(settings, engine=InstantEngine())
    with TestClient(app, client=(PROXY, 40000)) as c:
        yield c


def new_key(client) -> str:
    with client.app.state.sessions() as s:
        return create_key(s, "limits", client.app.state.auth.secret)[1]


@pytest.fixture
def address() -> str:
    """A fresh client address per test (the module's server remembers the others' failures)."""
    return f"2001:db8::{secrets.token_hex(1)}"


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
def test_an_address_past_its_burst_of_failures_is_refused_before_its_body_is_read(client, address, d):
    for _ in range(BURST):
        assert d.send(client, bogus(), address).status_code == 401
    d.assert_throttled(d.send(client, bogus(), address))
    # Refused before the body: a declared body over the server's limit is not even looked at (413).
    r = client.request("POST", d.post_path, content=b"{}", headers={**d.headers(bogus(), address),
                                                               "Content-Length": str(10**9)})
    d.assert_throttled(r)
    # Another address is not affected.
    assert d.send(client, bogus(), address + "1").status_code == 401


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
def test_a_valid_key_is_served_from_a_throttled_address(client, address, d):
    seen, fresh = new_key(client), new_key(client)
    assert d.send(client, seen, address).status_code == 200
    for _ in range(BURST):
        d.send(client, bogus(), address)
    d.assert_throttled(d.send(client, bogus(), address))
    assert d.send(client, seen, address).status_code == 200  # verified before: remembered
    assert d.send(client, fresh, address).status_code == 200  # never used: verified (HMAC) at the gate


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
def test_guesses_at_one_key_prefix_are_limited_across_addresses_but_the_key_still_works(client, address, d):
    key = new_key(client)
    guess = lambda: key[:10] + secrets.token_urlsafe(32)[:36]  # noqa: E731
    for i in range(BURST):
        assert d.send(client, guess(), f"{address}{i}").status_code == 401
    d.assert_throttled(d.send(client, guess(), address + "9"))  # a fresh address, the same prefix
    assert d.send(client, key, address + "9").status_code == 200


def test_a_missing_or_malformed_key_counts_as_a_failure(client, address):
    d = DIALECTS[1]
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        assert client.get(d.path, headers={**headers, "X-Forwarded-For": address}).status_code == 401
    d.assert_throttled(client.get(d.path, headers={"X-Forwarded-For": address}))


def test_a_throttled_request_is_held_for_the_delay_before_its_429(client, address, monkeypatch):
    """The tarpit: the 429 waits auth_fail_delay_seconds (a sleeping coroutine), so a flooding client
    that waits for each answer is slowed to one refusal per delay; a 401 within the burst is not held."""
    from pixelserve.service import auth_limits

    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(auth_limits.asyncio, "sleep", sleep)
    monkeypatch.setattr(client.app.state.auth_limits, "delay_s", 0.75)
    d = DIALECTS[0]
    for _ in range(BURST):
        assert d.send(client, bogus(), address).status_code == 401
    assert slept == []
    d.assert_throttled(d.send(client, bogus(), address))
    assert slept == [0.75]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    limiter = AuthLimiter(None, 1, 1, parse_networks("10.0.0.0/8, ::1"))
    assert limiter.address_of("203.0.113.9", "1.2.3.4") == "203.0.113.9"  # not a proxy: its own address
    assert limiter.address_of("10.1.2.3", "1.2.3.4") == "1.2.3.4"
    assert limiter.address_of("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.0.0.7") == "1.2.3.4"  # right-most untrusted hop
    assert limiter.address_of("::1", None) == "::1"
    assert limiter.address_of("10.1.2.3", "10.0.0.2") == "10.1.2.3"
    assert AuthLimiter(None, 1, 1, ()).address_of("127.0.0.1", "1.2.3.4") == "127.0.0.1"  # none trusted


def test_token_buckets_refill_at_their_rate():
    now = [0.0]
    b = TokenBuckets(burst=2, per_second=0.5, clock=lambda: now[0], max_tracked=3)
    assert b.wait("a") == 0
    b.take("a"), b.take("a")
    assert b.wait("a") == pytest.approx(2.0)
    now[0] = 1.0
    assert b.wait("a") == pytest.approx(1.0)
    now[0] = 100.0
    assert b.wait("a") == 0  # full again, never more than the burst
    b.take("a")
    assert b.wait("a") == 0
    for name in "bcd":  # past max_tracked, the least recently touched bucket is forgotten (full)
        b.take(name), b.take(name)
    assert b.wait("a") == 0 and b.wait("d") > 0


def test_the_credential_is_read_from_any_dialects_header():
    assert credential_of("KakaoAK ps_x", None) == "ps_x"
    assert credential_of("Bearer  ps_y ", None) == "ps_y"
    assert credential_of(None, " ps_z") == "ps_z"
    assert credential_of("ps_alone", None) is None and credential_of(None, None) is None


def test_bad_trusted_proxies_fail_at_start(tmp_path):
    from pydantic import ValidationError

    from pixelserve.settings import Settings

    with pytest.raises(ValidationError, match="not an IP address"):
        Settings(data_dir=tmp_path, trusted_proxies="10.0.0.1, proxy.local")
