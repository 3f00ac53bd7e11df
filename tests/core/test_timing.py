"""Server-Timing: off by default; when on, each answer says where its time went."""

import re

from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.api.karlo.helpers import T2I, small
from tests.conftest import make_settings, wait_ready


def stages_of(header: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+);dur=([\d.]+)", header)}


def test_server_timing_is_off_by_default(app_client, api_key):
    r = app_client.post(T2I, json=small(), headers={"Authorization": f"KakaoAK {api_key}"})
    assert r.status_code == 200 and "server-timing" not in r.headers


def test_server_timing_names_each_stage_of_a_generation(tmp_path, tiny_cache):
    with TestClient(create_app(make_settings(tmp_path, tiny_cache, server_timing=True))) as c:
        wait_ready(c)
        with c.app.state.sessions() as s:
            _, key = create_key(s, "t", c.app.state.auth.secret)
        r = c.post(T2I, json=small(), headers={"Authorization": f"KakaoAK {key}"})
        bad = c.post(T2I, json=small(), headers={"Authorization": "KakaoAK wrong"})
    assert r.status_code == 200
    stages = stages_of(r.headers["server-timing"])
    assert list(stages) == ["auth", "admit", "engine", "store", "finish", "app"]
    assert all(ms > 0 for ms in stages.values())
    # the whole is at least its parts (auth runs before the route, the others one after another)
    assert stages["app"] >= sum(ms for name, ms in stages.items() if name != "app")
    assert bad.status_code == 401 and list(stages_of(bad.headers["server-timing"])) == ["auth", "app"]
