"""Every dialect's jobs go through the one pipeline and publish the same events."""

import time

from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.api.karlo.helpers import T2I
from tests.api.karlo.helpers import small as karlo_small
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import small as octoai_small
from tests.api.studio.conftest import SMALL_SETTINGS
from tests.conftest import make_settings, wait_ready


def test_karlo_octoai_and_studio_jobs_publish_the_same_events(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, octoai_extra_sizes=EXTRA_SIZES, **SMALL_SETTINGS))
    events = []
    app.state.events.subscribe("collect", events.append)  # as create_app attaches its own subscribers
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            info, key = create_key(s, "events", app.state.auth.secret)
        calls = {
            "karlo": client.post(T2I, headers={"Authorization": f"KakaoAK {key}"},
                                 json={**karlo_small(), "num_inference_steps": 10, "return_type": "base64_string"}),
            "octoai": client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"}, json=octoai_small()),
            "studio": client.post("/api/images/create", headers={"X-Api-Key": key},
                                  json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1}),
        }
        for name, r in calls.items():
            assert r.status_code == 200, (name, r.text)
        deadline = time.monotonic() + 10
        while sum(e.type == "finished" for e in events) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    by_dialect: dict[str, list] = {}
    for e in events:
        by_dialect.setdefault(e.dialect, []).append(e)
    assert set(by_dialect) == {"karlo", "octoai", "studio"}
    for dialect, evs in by_dialect.items():
        assert len({e.job_id for e in evs}) == 1, dialect
        types = [e.type for e in evs]
        steps = [e.data["steps"] for e in evs if e.type == "progress"]
        assert types == ["queued", "started"] + ["progress"] * len(steps) + ["finished"], dialect
        assert steps and [e.data["step"] for e in evs if e.type == "progress"] == list(range(1, steps[0] + 1))
        assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
        assert {e.caller_id for e in evs} == {info.id}
        assert len(evs[-1].data["images"]) == 1 and evs[-1].data["images"][0]["key"]
