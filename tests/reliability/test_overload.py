"""Background (async) Studio jobs are bounded like the engine queue: once max_queue of them wait,
a new one is refused with 503 and Retry-After before anything is charged."""

from fastapi.testclient import TestClient

from pixelserve.app import create_app
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.api.studio.test_jobs import NeverReadyEngine
from tests.conftest import make_settings
from tests.security.state import snapshot


def test_a_full_background_backlog_answers_503_and_charges_nothing(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, max_queue=2, **SMALL_SETTINGS), engine=NeverReadyEngine(None))
    body = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1, "async": True}
    with TestClient(app) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        accepted = [client.post(CREATE, headers=h, json=body) for _ in range(3)]  # one taken by the runner, two wait
        assert [r.status_code for r in accepted] == [200, 200, 200]
        assert app.state.studio_jobs.pending() == 2
        start, before = balances(client, h), snapshot(app)
        r = client.post(CREATE, headers=h, json=body)
        assert r.status_code == 503 and r.json()["statusCode"] == 503 and "background jobs" in r.json()["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert balances(client, h) == start and snapshot(app) == before
