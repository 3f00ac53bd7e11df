"""Signed uploads into the local store (storage/urls.upload_url -> PUT /v1/uploads/<key>): the
local-disk side of the asset-upload protocol; an S3 store hands out the bucket's own PUT URL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.storage.urls import download_url, upload_url
from tests.api.studio.test_leases import SlowEngine
from tests.conftest import TEST_STORE

pytestmark = pytest.mark.skipif(TEST_STORE != "local", reason="the local store's own upload route")


@pytest.fixture
def client(tmp_path):
    from pixelserve.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, max_upload_bytes=64 * 1024), engine=SlowEngine(0))
    with TestClient(app) as c:
        yield c


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_a_signed_upload_url_stores_the_bytes_once_signed(client):
    state = client.app.state
    url = upload_url(state.store, state.signer, "http://testserver", "assets/a1/lora.safetensors", ttl=60)
    assert "/v1/uploads/assets/a1/lora.safetensors?expires=" in url
    r = client.put(path_of(url), content=b"weights" * 100, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json() == {"key": "assets/a1/lora.safetensors", "bytes": 700}
    assert state.store.get("assets/a1/lora.safetensors") == b"weights" * 100
    with state.store.open("assets/a1/lora.safetensors") as f:
        assert f.read(7) == b"weights"


def test_upload_urls_refuse_tampering_expiry_reuse_and_size(client):
    state = client.app.state
    url = path_of(upload_url(state.store, state.signer, "http://testserver", "assets/a2/x.safetensors", ttl=60))
    assert client.put(url.replace("a2/x", "a3/x"), content=b"x").status_code == 403  # another key
    get_url = path_of(download_url(state.store, state.signer, "http://testserver", "assets/a2/x.png"))
    put_with_get_signature = get_url.replace("/v1/images/", "/v1/uploads/")
    assert client.put(put_with_get_signature, content=b"x").status_code == 403  # a GET URL cannot upload
    r = client.put(url, content=b"x" * (64 * 1024 + 1))
    assert r.status_code == 413 and "over" in r.json()["detail"]
    assert not state.store.exists("assets/a2/x.safetensors")  # refused whole, nothing half-written
    real = state.signer.clock
    state.signer.clock = lambda: real() + 61
    try:
        r = client.put(url, content=b"late")
    finally:
        state.signer.clock = real
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert not state.store.exists("assets/a2/x.safetensors")
    for key in ("../escape.bin", "a/../../b.bin", ".hidden"):
        signed = path_of(state.signer.sign("http://testserver", key, "PUT"))
        assert client.put(signed, content=b"x").status_code in (403, 404)
    assert not (state.store.root.parent / "escape.bin").exists()
