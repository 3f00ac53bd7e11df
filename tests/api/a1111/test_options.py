"""A1111 ``/options`` per key (dialects/a1111/options.py, service/key_options.py): with auth off, one
shared set; stored values survive the cache; a default model that is no longer configured falls back."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.models import KeyOptions
from pixelserve.service.auth import Caller
from pixelserve.service.key_options import KeyOptionsService
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("a1111-open"), tiny_cache, auth_enabled=False))
    with TestClient(app) as client:
        yield client


def test_auth_off_one_shared_set(open_app):
    client, defaults = open_app, open_app.app.state.a1111_defaults
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sd"
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-sdxl [0000000000]"}).json() is None
    assert client.post("/sdapi/v1/options", json={"samples_format": "webp"}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sdxl"
    assert defaults.model_for(None) == "tiny-sdxl"
    assert defaults.options_for(None) == {"CLIP_stop_at_last_layers": 1, "samples_format": "webp", "sd_vae": "Automatic"}
    with open_app.app.state.sessions() as s:  # the row without a key stays single
        assert s.scalar(select(func.count()).select_from(KeyOptions).where(KeyOptions.api_key_id.is_(None))) == 1


def test_options_body_must_be_an_object(open_app):
    r = open_app.post("/sdapi/v1/options", json=["sd_model_checkpoint"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"


def test_service_merges_and_removes(open_app):
    service = KeyOptionsService(open_app.app.state.sessions, "test")
    assert service.get(None) == {}
    assert service.update(None, {"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert service.update(None, {"a": None, "c": 3}) == {"b": 2, "c": 3}
    fresh = KeyOptionsService(open_app.app.state.sessions, "test")  # no cache: read from the database
    assert fresh.get(None) == {"b": 2, "c": 3}
    assert KeyOptionsService(open_app.app.state.sessions, "other").get(None) == {}  # namespaces apart


def test_a_model_no_longer_served_falls_back(open_app):
    defaults = open_app.app.state.a1111_defaults
    defaults.service.update(None, {"sd_model_checkpoint": "removed-from-config"})
    assert defaults.model_for(None) == "tiny-sd"
    assert open_app.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny-sd"
    assert defaults.model_for(Caller(12345, "nobody")) == "tiny-sd"  # a key that never chose
