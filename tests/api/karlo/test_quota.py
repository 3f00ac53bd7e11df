"""Per-key quotas: counted per accepted request, kept in the database, Kakao's -10 when exhausted."""

from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.crud.quotas import set_limits
from tests.api.karlo.helpers import T2I, small
from tests.conftest import make_settings, wait_ready


def client_for(data_dir, tiny_cache, **settings):
    app = create_app(make_settings(data_dir, tiny_cache, **settings))
    return TestClient(app)


def test_daily_quota_survives_a_restart_and_bad_input_is_free(tmp_path, tiny_cache, frozen_quota_clock):
    with client_for(tmp_path, tiny_cache, quota_per_day=2) as c:
        wait_ready(c)
        with c.app.state.sessions() as s:
            _, key = create_key(s, "q", c.app.state.auth.secret)
        h = {"Authorization": f"KakaoAK {key}"}
        assert c.post(T2I, json=small(samples=0), headers=h).status_code == 400  # invalid: not counted
        assert c.post(T2I, json=small(), headers=h).status_code == 200
    with client_for(tmp_path, tiny_cache, quota_per_day=2) as c:  # a restart
        wait_ready(c)
        assert c.post(T2I, json=small(), headers=h).status_code == 200
        r = c.post(T2I, json=small(), headers=h)
        assert r.status_code == 400 and r.json()["code"] == -10 and "day" in r.json()["msg"]


def test_per_key_override_and_unlimited(tmp_path, tiny_cache, frozen_quota_clock):
    with client_for(tmp_path, tiny_cache, quota_per_minute=1) as c:
        wait_ready(c)
        with c.app.state.sessions() as s:
            limited, key1 = create_key(s, "limited", c.app.state.auth.secret)
            free, key2 = create_key(s, "free", c.app.state.auth.secret)
            set_limits(s, free.id, per_minute=0, per_day=None, per_month=None)
        h1, h2 = {"Authorization": f"KakaoAK {key1}"}, {"Authorization": f"KakaoAK {key2}"}
        assert c.post(T2I, json=small(), headers=h1).status_code == 200
        assert c.post(T2I, json=small(), headers=h1).json()["code"] == -10
        assert all(c.post(T2I, json=small(), headers=h2).status_code == 200 for _ in range(3))


def test_failed_jobs_do_not_count(tmp_path, tiny_cache):
    from pixelserve.db.crud.quotas import usage

    with client_for(tmp_path, tiny_cache, quota_per_day=5) as c:
        wait_ready(c)
        with c.app.state.sessions() as s:
            info, key = create_key(s, "k", c.app.state.auth.secret)
        engine = c.app.state.engine
        real = engine._run
        engine._run = lambda *a: (_ for _ in ()).throw(RuntimeError("worker crashed"))
        r = c.post(T2I, json=small(), headers={"Authorization": f"KakaoAK {key}"})
        engine._run = real
        assert r.status_code == 500
        with c.app.state.sessions() as s:
            assert usage(s, info.id)["day"] == 0
