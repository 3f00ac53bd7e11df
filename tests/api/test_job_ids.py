"""X-Job-Id: every dialect's generation answer names its job; a caller may choose the id itself."""

from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, UsageEvent
from tests.api.karlo.helpers import T2I
from tests.api.karlo.helpers import small as karlo_small
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import small as octoai_small
from tests.api.studio.conftest import SMALL_SETTINGS
from tests.conftest import make_settings, wait_ready


def test_answers_carry_the_job_id_and_a_callers_own_id_is_kept_once_per_key(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, octoai_extra_sizes=EXTRA_SIZES, **SMALL_SETTINGS))
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            _, key = create_key(s, "one", app.state.auth.secret)
            _, other = create_key(s, "two", app.state.auth.secret)
        karlo = {**karlo_small(), "return_type": "base64_string"}

        def post_karlo(k, job_id=None):
            headers = {"Authorization": f"KakaoAK {k}", **({"X-Job-Id": job_id} if job_id else {})}
            return client.post(T2I, headers=headers, json=karlo)

        plain = post_karlo(key)
        assert plain.status_code == 200 and plain.headers["X-Job-Id"] == plain.json()["id"]
        octo = client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"}, json=octoai_small())
        assert octo.status_code == 200 and octo.headers["X-Job-Id"]
        studio = client.post("/api/images/create", headers={"X-Api-Key": key},
                             json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1})
        assert studio.status_code == 200 and studio.headers["X-Job-Id"]
        assert len({plain.headers["X-Job-Id"], octo.headers["X-Job-Id"], studio.headers["X-Job-Id"]}) == 3

        mine = post_karlo(key, "render-42_a")
        assert mine.status_code == 200 and mine.headers["X-Job-Id"] == "render-42_a"
        with app.state.sessions() as s:
            usage_before = s.query(UsageEvent).count()
            jobs_before = s.query(Job).count()
        again = post_karlo(key, "render-42_a")  # the same key reusing its id: refused, nothing written
        assert again.status_code == 409 and "X-Job-Id" in again.json()["msg"]
        bad = post_karlo(key, "no spaces allowed")
        assert bad.status_code == 400 and "X-Job-Id" in bad.json()["msg"]
        with app.state.sessions() as s:
            assert s.query(UsageEvent).count() == usage_before and s.query(Job).count() == jobs_before
        assert post_karlo(other, "render-42_a").status_code == 200  # ids are per key
        with app.state.sessions() as s:
            assert s.query(Job).filter(Job.client_id == "render-42_a").count() == 2
