"""Retryable refusals (server busy, models loading, a quota window) say when to retry."""

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.crud.quotas import seconds_until_next
from pixelserve.errors import EngineFailure, NotReady, Overloaded
from pixelserve.settings import Settings
from tests.api.karlo.helpers import T2I, small
from tests.api.karlo.test_engine_errors import FailingEngine
from tests.conftest import make_settings, wait_ready


@pytest.mark.parametrize("error, status, retry_after", [
    (Overloaded("queue full"), 503, "1"),
    (NotReady("models are still loading"), 503, "5"),
    (EngineFailure("a crashed worker"), 500, None),  # not a "retry later" answer
])
def test_karlo_busy_answers_carry_retry_after(tmp_path, error, status, retry_after):
    app = create_app(Settings(data_dir=tmp_path), engine=FailingEngine(error))
    with TestClient(app, raise_server_exceptions=False) as client:
        with app.state.sessions() as s:
            _, key = create_key(s, "k", app.state.auth.secret)
        r = client.post(T2I, json=small(), headers={"Authorization": f"KakaoAK {key}"})
    assert r.status_code == status
    assert r.headers.get("retry-after") == retry_after


def test_an_exhausted_quota_says_when_its_window_ends(tmp_path, tiny_cache, frozen_quota_clock):
    with TestClient(create_app(make_settings(tmp_path, tiny_cache, quota_per_minute=1))) as c:
        wait_ready(c)
        with c.app.state.sessions() as s:
            _, key = create_key(s, "q", c.app.state.auth.secret)
        h = {"Authorization": f"KakaoAK {key}"}
        assert c.post(T2I, json=small(), headers=h).status_code == 200
        r = c.post(T2I, json=small(), headers=h)
    assert r.json()["code"] == -10
    assert 1 <= int(r.headers["retry-after"]) <= 60


@pytest.mark.parametrize("window, now, seconds", [
    ("minute", datetime(2026, 3, 1, 10, 0, 59, 500000, tzinfo=timezone.utc), 1),
    ("day", datetime(2026, 3, 1, 23, 0, 0, tzinfo=timezone.utc), 3600),
    ("month", datetime(2026, 2, 28, 0, 0, 0, tzinfo=timezone.utc), 86400),
    ("month", datetime(2026, 12, 31, 12, 0, 0, tzinfo=timezone.utc), 12 * 3600),
])
def test_seconds_until_the_window_ends(window, now, seconds):
    assert seconds_until_next(window, now) == seconds
