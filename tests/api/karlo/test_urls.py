"""return_type url: absolute, signed, expiring 10 minutes after the response."""

import pytest

from tests.api.karlo.helpers import small
from tests.api.karlo.test_t2i import fetch


@pytest.fixture
def frozen(app_client):
    signer = app_client.app.state.signer
    real = signer.clock
    now = [1_800_000_000.0]
    signer.clock = lambda: now[0]
    yield now
    signer.clock = real


def test_url_works_for_ten_minutes_then_403(karlo, app_client, frozen):
    url = karlo(small()).json()["images"][0]["image"]
    assert f"expires={1_800_000_000 + 600}" in url
    frozen[0] += 599
    assert fetch(app_client, url).status_code == 200
    frozen[0] += 2
    r = fetch(app_client, url)
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_tampered_urls_are_403(karlo, app_client):
    url = karlo(small()).json()["images"][0]["image"]
    path, _, query = url.partition("?")
    expires = int(query.split("expires=")[1].split("&")[0])
    later = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert fetch(app_client, later).status_code == 403
    other = path[:-10] + "aaaaa.webp?" + query
    assert fetch(app_client, other).status_code in (403, 404)
    assert fetch(app_client, path).status_code == 403  # no signature at all


def test_traversal_keys_are_refused(app_client):
    for key in ("../pixelserve.db", "..%2Fpixelserve.db", "a/../../secrets/url_signing.key"):
        assert app_client.get(f"/v1/images/{key}?expires=9999999999&signature=x").status_code in (403, 404)


def test_url_uses_configured_public_base(karlo, app_client):
    settings = app_client.app.state.settings
    settings.public_base_url = "https://img.example.com"
    try:
        url = karlo(small()).json()["images"][0]["image"]
    finally:
        settings.public_base_url = None
    assert url.startswith("https://img.example.com/v1/images/")


def test_url_follows_request_host_when_no_base_is_set(karlo):
    url = karlo(small(), headers={"Host": "gpu-box.internal:8000"}).json()["images"][0]["image"]
    assert url.startswith("http://gpu-box.internal:8000/v1/images/")
