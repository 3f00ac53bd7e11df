"""A server whose store is an S3 bucket (SeaweedFS on 127.0.0.1): Karlo's return_type url is a
pre-signed bucket URL that works for 10 minutes and then not; Studio's images and references live
in the bucket too."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.settings import Settings
from tests.api.karlo.helpers import T2I, small
from tests.api.studio.helpers import CREATE, png_bytes, upload
from tests.api.studio.test_leases import SlowEngine
from tests.storage import seaweed


@pytest.fixture
def s3_server(tmp_path, seaweed_s3):
    def make(**overrides):
        settings = Settings(data_dir=tmp_path, **seaweed_s3.store_settings(seaweed.BUCKET, prefix=tmp_path.name),
                            studio_resolutions={"sd": {"1:1": "64x64"}}, **overrides)
        app = create_app(settings, engine=SlowEngine(0))
        return TestClient(app)
    return make


def key_for(app) -> str:
    with app.state.sessions() as s:
        return create_key(s, "s3", app.state.auth.secret)[1]


def test_karlo_urls_are_presigned_bucket_urls_for_ten_minutes(s3_server, seaweed_s3):
    with s3_server() as client:
        h = {"Authorization": f"KakaoAK {key_for(client.app)}"}
        r = client.post(T2I, json=small(samples=2), headers=h)
        assert r.status_code == 200, r.text
        urls = [im["image"] for im in r.json()["images"]]
    for url in urls:
        assert url.startswith(seaweed_s3.endpoint + "/") and parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["600"]
        got = httpx.get(url)  # straight from the bucket, the API server is not involved
        assert got.status_code == 200 and got.headers["content-type"] == "image/webp"  # Karlo's default format
        assert got.content[:4] == b"RIFF" and got.content[8:12] == b"WEBP"
    assert httpx.get(urls[0].split("?")[0]).status_code == 403


def test_karlo_urls_expire_at_the_configured_ttl(s3_server):
    with s3_server(url_ttl_seconds=3) as client:
        h = {"Authorization": f"KakaoAK {key_for(client.app)}"}
        signed_before = time.time()
        url = client.post(T2I, json=small(), headers=h).json()["images"][0]["image"]
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["3"]
    assert httpx.get(url).status_code == 200
    time.sleep(max(0.0, signed_before + 4.5 - time.time()))
    r = httpx.get(url)
    assert r.status_code == 403 and "expired" in r.text.lower()


def test_studio_images_and_references_live_in_the_bucket(s3_server, seaweed_s3, tmp_path):
    with s3_server() as client:
        h = {"X-Api-Key": key_for(client.app)}
        path = upload(client, h, png_bytes())
        r = client.post(CREATE, headers=h, json={"prompt": "a cat", "ratio": "1:1", "sample": 1,
                                                 "image": path})
        assert r.status_code == 200, r.text
        image = r.json()["images"][0]
        assert base64.b64decode(image["base64"])[:4] == b"RIFF"
    listing = seaweed_s3.client().list_objects_v2(Bucket=seaweed.BUCKET, Prefix=tmp_path.name + "/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    owner, name = path.split("/")
    assert f"{tmp_path.name}/uploads/{owner}/{name}" in keys
    assert any(k.startswith(f"{tmp_path.name}/studio/{owner}/") and k.endswith(".webp") for k in keys)
    assert not (tmp_path / "images").exists()  # nothing on local disk


def test_assets_are_put_straight_into_the_bucket_and_kept_there(s3_server, seaweed_s3, tmp_path):
    from pixelserve.engine.demo.tiny_adapters import ensure_tiny_lora

    lora = ensure_tiny_lora("sd", tmp_path / "adapters").read_bytes()
    with s3_server() as client:
        key = key_for(client.app)
        h = {"Authorization": f"Bearer {key}"}
        created = client.post("/v1/assets", headers=h, json={
            "asset_type": "lora", "name": "ink", "data": {"asset_type": "lora", "engine": "image/stable-diffusion-v1-5",
                                                          "file_format": "safetensors", "data_type": "fp16",
                                                          "trigger_words": ["ink"]}})
        assert created.status_code == 200, created.text
        asset_id, put_url = created.json()["asset"]["id"], created.json()["transfer_api"]["put_url"]
        assert put_url.startswith(seaweed_s3.endpoint + "/")  # the client uploads to the bucket, not to us
        assert httpx.put(put_url, content=lora).status_code == 200
        r = client.post(f"/v1/assets/{asset_id}/complete-upload", headers=h, json={})
        assert r.status_code == 200 and r.json()["error"] is None, r.text
        assert client.get(f"/v1/assets/{asset_id}", headers=h).json()["asset"]["status"] == "ready"
        object_key = f"{tmp_path.name}/assets/{asset_id}.safetensors"
        assert seaweed_s3.client().get_object(Bucket=seaweed.BUCKET, Key=object_key)["Body"].read() == lora
        # Another API replica (no local copy yet) fetches the file from the bucket when a request names it.
        assets = client.app.state.assets
        assets.file_of(asset_id).unlink()
        scope = next(r.scope for r in assets.all_rows() if r.id == asset_id)
        found = assets.resolve(scope, name="ink", public=False, kind="lora", family="sd", field="loras", shown="ink")
        assert open(found.path, "rb").read() == lora
        assert client.delete(f"/v1/assets/{asset_id}", headers=h).status_code == 200
        listing = seaweed_s3.client().list_objects_v2(Bucket=seaweed.BUCKET, Prefix=f"{tmp_path.name}/assets/")
        assert listing.get("KeyCount", 0) == 0  # deleted from the bucket too
        # A refused file (not safetensors) is not kept in the bucket either.
        created = client.post("/v1/assets", headers=h, json={
            "asset_type": "lora", "name": "evil", "data": {"asset_type": "lora", "engine": "image/stable-diffusion-v1-5",
                                                           "file_format": "safetensors", "data_type": "fp16"}})
        evil_id = created.json()["asset"]["id"]
        assert httpx.put(created.json()["transfer_api"]["put_url"], content=b"\x80\x04pickle").status_code == 200
        r = client.post(f"/v1/assets/{evil_id}/complete-upload", headers=h, json={})
        assert r.json()["error"], r.text
        listing = seaweed_s3.client().list_objects_v2(Bucket=seaweed.BUCKET, Prefix=f"{tmp_path.name}/assets/")
        assert listing.get("KeyCount", 0) == 0
