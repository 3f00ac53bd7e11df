"""Idempotency-Key: a retried POST gets the first answer, never a second job or charge."""

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.session import open_database
from pixelserve.errors import Conflict, InvalidRequest, Overloaded
from pixelserve.service import idempotency
from pixelserve.settings import Settings
from tests.api.karlo.helpers import T2I, job_count, small
from tests.api.karlo.test_engine_errors import FailingEngine


def post(client, key, body, idem):
    return client.post(T2I, json=body, headers={"Authorization": f"KakaoAK {key}", "Idempotency-Key": idem})


def test_a_retry_gets_the_first_answer_and_runs_nothing(app_client, api_key):
    body = small(return_type="base64_string", image_format="png")
    before = job_count(app_client)
    first = post(app_client, api_key, body, "order-1")
    again = post(app_client, api_key, body, "order-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert job_count(app_client) == before + 1


def test_the_same_key_for_another_body_is_refused(app_client, api_key):
    assert post(app_client, api_key, small(), "order-2").status_code == 200
    before = job_count(app_client)
    r = post(app_client, api_key, small(prompt="a dog"), "order-2")
    assert (r.status_code, r.json()["code"]) == (400, -2) and "Idempotency-Key" in r.json()["msg"]
    assert job_count(app_client) == before


def test_keys_are_per_caller(app_client, api_key):
    with app_client.app.state.sessions() as s:
        _, other = create_key(s, "other caller", app_client.app.state.auth.secret)
    before = job_count(app_client)
    assert post(app_client, api_key, small(), "shared-name").status_code == 200
    r = post(app_client, other, small(), "shared-name")
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert job_count(app_client) == before + 2


def test_a_server_error_is_not_replayed(tmp_path):
    engine = FailingEngine(Overloaded("queue full"))
    app = create_app(Settings(data_dir=tmp_path), engine=engine)
    with TestClient(app) as client:
        with app.state.sessions() as s:
            _, key = create_key(s, "k", app.state.auth.secret)
        assert post(client, key, small(), "retry-me").status_code == 503
        assert post(client, key, small(), "retry-me").status_code == 503
    assert len(engine.submitted) == 2  # the retry really ran again


def test_a_retry_while_the_first_runs_is_told_to_wait(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'i.db'}")
    fp = idempotency.fingerprint_of("POST", "/x", b"{}")
    assert idempotency.claim(sessions, "caller", "k1", fp) is None
    with pytest.raises(Conflict):
        idempotency.claim(sessions, "caller", "k1", fp)
    idempotency.finish(sessions, "caller", "k1", idempotency.StoredAnswer(200, "application/json", b"{}"))
    assert idempotency.claim(sessions, "caller", "k1", fp).body == b"{}"
    with pytest.raises(InvalidRequest):
        idempotency.claim(sessions, "caller", "x" * 256, fp)


def test_studio_a_retry_gets_the_first_answer_and_is_charged_once(tmp_path, tiny_cache):
    from tests.api.studio.conftest import SMALL_SETTINGS, new_key
    from tests.api.studio.helpers import CREATE, balances
    from tests.conftest import make_settings, wait_ready

    with TestClient(create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS))) as client:
        wait_ready(client)
        _, key = new_key(client.app)
        h = {"X-Api-Key": key}
        start = balances(client, h)["dailyCredit"]
        body = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2}
        first = client.post(CREATE, json=body, headers={**h, "Idempotency-Key": "studio-1"})
        again = client.post(CREATE, json=body, headers={**h, "Idempotency-Key": "studio-1"})
        assert first.status_code == again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert [im["imageId"] for im in again.json()["images"]] == [im["imageId"] for im in first.json()["images"]]
        assert balances(client, h)["dailyCredit"] == start - 2  # two images, paid once


def test_a_refused_request_keeps_no_record_and_its_corrected_retry_runs(app_client, api_key):
    from sqlalchemy import func, select

    from pixelserve.db.models import IdempotentRequest

    def records():
        with app_client.app.state.sessions() as s:
            return s.scalar(select(func.count()).select_from(IdempotentRequest))

    before, jobs = records(), job_count(app_client)
    bad = post(app_client, api_key, small(width=1000), "fix-and-retry")
    assert (bad.status_code, bad.json()["code"]) == (400, -2)
    assert post(app_client, "not-a-key", small(), "anonymous").status_code == 401
    assert records() == before and job_count(app_client) == jobs  # nothing written for refusals
    fixed = post(app_client, api_key, small(), "fix-and-retry")  # same key, corrected body: it runs
    assert fixed.status_code == 200 and "idempotent-replayed" not in fixed.headers
    assert records() == before + 1 and job_count(app_client) == jobs + 1
