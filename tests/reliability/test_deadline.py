"""The per-request deadline, in every dialect: a job still running when it passes is stopped (not
left running for a client that gave up) and answered 503 with Retry-After; nothing is charged."""

import time

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.api.studio.helpers import balances
from tests.conftest import make_settings, wait_ready


@pytest.fixture(scope="module")
def slow_client(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("deadline"), tiny_cache, request_deadline_seconds=1.0,
                             studio_resolutions={"sd": {"1:1": "384x384"}}, studio_steps=150)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


@pytest.mark.parametrize("path, body, auth, code", [
    ("/v2/inference/karlo/t2i", {"version": "v2.0", "prompt": "slow", "width": 640, "height": 640,
                                 "num_inference_steps": 100}, lambda k: {"Authorization": f"KakaoAK {k}"}, -7),
    ("/api/images/create", {"prompt": "slow", "styleId": 1, "ratio": "1:1", "sample": 4},
     lambda k: {"X-Api-Key": k}, None),
], ids=["karlo", "studio"])
def test_a_request_past_its_deadline_is_stopped_503_and_charges_nothing(slow_client, path, body, auth, code):
    from tests.security.state import snapshot

    app = slow_client.app
    with app.state.sessions() as s:
        _, key = create_key(s, "deadline", app.state.auth.secret)
    start = balances(slow_client, {"X-Api-Key": key})
    before = snapshot(app)
    r = slow_client.post(path, json=body, headers=auth(key))
    assert r.status_code == 503, r.text
    assert "not finished within 1 s" in r.text and int(r.headers["retry-after"]) >= 1
    if code is not None:
        assert r.json()["code"] == code
    stopped_by = time.monotonic() + 10
    while app.state.engine.health().running:  # the worker leaves it at its next step
        assert time.monotonic() < stopped_by, "the job kept running past its deadline"
        time.sleep(0.02)
    assert balances(slow_client, {"X-Api-Key": key}) == start
    after = snapshot(app)
    assert after["files"] == before["files"] and after["rows"]["usage_events"] == before["rows"]["usage_events"]
