"""Readiness reflects model loading; a failed load is reported, not hidden."""

import asyncio

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.settings import Settings


def test_ready_reports_models(app_client):
    r = app_client.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["devices"] == ["cpu"]
    assert {m["id"]: m["loaded"] for m in body["models"]} == {"tiny-sd": True, "tiny-sdxl": True, "tiny-unclip": True}
    assert app_client.get("/health/live").json() == {"status": "ok"}


def test_failed_load_is_503_with_the_reason(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 32)
    cfg = tmp_path / "models.toml"
    cfg.write_text(f"[models.broken]\nfamily = 'sd'\npath = '{bad}'\n")
    app = create_app(Settings(data_dir=tmp_path / "data", models_config=cfg))
    with TestClient(app) as client:
        client.portal.call(asyncio.wait_for, app.state.engine.wait_ready(), 60)
        r = client.get("/health/ready")
        assert client.get("/health/live").status_code == 200
    assert r.status_code == 503
    assert r.json()["status"] == "error" and "safetensors" in r.json()["error"]


def test_body_over_the_limit_is_refused(app_client, api_key):
    state = app_client.app.state
    old, state.max_body_bytes = state.max_body_bytes, 1000
    try:
        r = app_client.post("/v2/inference/karlo/t2i", headers={"Authorization": f"KakaoAK {api_key}"},
                            json={"version": "v2.0", "prompt": "a" * 2000, "width": 384, "height": 384})
    finally:
        state.max_body_bytes = old
    assert r.status_code == 413 and r.json()["code"] == -2 and "body" in r.json()["msg"]


def test_not_ready_while_draining(app_client):
    app_client.app.state.draining = True
    try:
        r = app_client.get("/health/ready")
        assert r.status_code == 503 and r.json()["status"] == "draining"
        assert app_client.get("/health/live").status_code == 200
    finally:
        app_client.app.state.draining = False
    assert app_client.get("/health/ready").status_code == 200


def test_what_holds_loading_up_is_on_ready(app_client):
    """An engine that is not ready and says why (a Ray replica no node has room for): still "loading",
    not an error, with the reason; gone once ready."""
    from pixelserve.engine.client import EngineHealth

    engine = app_client.app.state.engine
    why = "pixelserve-c (deployment engine-c): Ray cannot place 1 replica; each asks CPU 1"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(engine, "health", lambda: EngineHealth(ready=False, devices=("ray:pixelserve-c",), queue_depth=0,
                                                         queue_capacity=1, running=0, waiting=why))
        r = app_client.get("/health/ready")
    assert r.status_code == 503 and r.json()["status"] == "loading" and r.json()["waiting"] == why
    assert "error" not in r.json()
    assert "waiting" not in app_client.get("/health/ready").json()
