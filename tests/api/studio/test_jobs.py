"""Jobs that fail are refunded; accepted async jobs finish even across a server restart."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pixelserve.app import create_app
from pixelserve.db.models_studio import CreditEntry, StudioImage, StudioJob
from pixelserve.engine.client import EngineHealth
from pixelserve.errors import EngineFailure, NotReady, Overloaded
from tests.api.karlo.test_engine_errors import FailingEngine
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.api.studio.test_records import wait_for
from tests.conftest import make_settings, wait_ready

BODY = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2}


def ledger(app, job_id: str) -> list[str]:
    with app.state.sessions() as s:
        return [e.kind for e in s.scalars(select(CreditEntry).where(CreditEntry.job_id == job_id).order_by(CreditEntry.id))]


def job_of(app, image_id: int) -> StudioJob:
    with app.state.sessions() as s:
        return s.get(StudioJob, s.get(StudioImage, image_id).job_id)


@pytest.mark.parametrize("error, status", [
    (Overloaded("queue full"), 503), (NotReady("models are still loading"), 503),
    (EngineFailure("out of memory"), 500), (RuntimeError("a bug"), 500),
])
def test_failed_job_is_refunded_and_recorded(tmp_path, tiny_cache, error, status):
    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS), engine=FailingEngine(error))
    with TestClient(app, raise_server_exceptions=False) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        before = balances(client, h)
        r = client.post(CREATE, headers=h, json=BODY)
        assert r.status_code == status, r.text
        assert r.json()["statusCode"] == status and r.json()["message"] and r.json()["error"]
        assert balances(client, h) == before  # reserved, then all refunded
        with app.state.sessions() as s:
            [job] = s.scalars(select(StudioJob)).all()
            images = s.scalars(select(StudioImage)).all()
        assert job.status == "FAILED" and job.error
        assert [im.status for im in images] == ["FAILED", "FAILED"] and all(im.error for im in images)
        assert ledger(app, job.id) == ["reserve", "refund", "settle"]
        got = client.get(f"/api/images/{images[0].id}", headers=h).json()["images"][0]
        assert got["generationStatus"] == "FAILED" and got["generationError"] and got["base64"] is None


def test_failed_async_job_is_refunded(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS), engine=FailingEngine(EngineFailure("boom")))
    with TestClient(app) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        before = balances(client, h)["dailyCredit"]
        r = client.post(CREATE, headers=h, json={**BODY, "async": True})
        assert r.status_code == 200 and r.json()["dailyCredit"] == before - 2  # reserved up front
        im = wait_for(client, h, r.json()["images"][0]["imageId"])
        assert im["generationStatus"] == "FAILED" and "boom" in im["generationError"]
        assert balances(client, h)["dailyCredit"] == before


class NeverReadyEngine(FailingEngine):
    """A server whose models never finish loading: async jobs wait in the queue."""

    def health(self):
        return EngineHealth(ready=False, devices=("fake",), queue_depth=0, queue_capacity=1, running=0)


class HangingEngine(FailingEngine):
    """Takes the job and never finishes it (the server is stopped while it runs)."""

    def __init__(self):
        super().__init__(None)

    async def submit(self, job_id, request, on_progress=None):
        self.submitted.append(request)
        await asyncio.Event().wait()


@pytest.mark.parametrize("first_engine, state", [(NeverReadyEngine(None), "PENDING"), (HangingEngine(), "IN_PROGRESS")])
def test_async_job_finishes_after_a_restart(tmp_path, tiny_cache, first_engine, state):
    settings = make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS)
    app = create_app(settings, engine=first_engine)
    with TestClient(app) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        start = balances(client, h)["dailyCredit"]
        r = client.post(CREATE, headers=h, json={**BODY, "async": True})
        assert r.status_code == 200, r.text
        ids = [im["imageId"] for im in r.json()["images"]]
        wait_for(client, h, ids[0], states=(state,), timeout=10)
    job = job_of(app, ids[0])
    assert job.status == state  # the stop left it for the next start, unfinished and unsettled
    assert ledger(app, job.id) == ["reserve"]

    app2 = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS))  # the real engine, same data dir
    with TestClient(app2) as client:
        wait_ready(client)
        for image_id in ids:
            im = wait_for(client, h, image_id, timeout=120)
            assert im["generationStatus"] == "COMPLETED" and im["base64"]
        assert balances(client, h)["dailyCredit"] == start - 2  # charged once
    job = job_of(app2, ids[0])
    assert job.status == "COMPLETED" and ledger(app2, job.id) == ["reserve", "settle"]
    assert job.attempts == (2 if state == "IN_PROGRESS" else 1)


def test_settling_a_finished_job_again_charges_nothing(studio_client, owner):
    owner_id, h = owner
    r = studio_client.post(CREATE, headers=h, json=BODY)
    after = balances(studio_client, h)
    job = job_of(studio_client.app, r.json()["images"][0]["imageId"])
    credits = studio_client.app.state.studio.credits
    assert credits.settle_job(job.id, refund=0) is False
    assert credits.settle_job(job.id, refund=2) is False  # a late "refund" cannot pay out twice either
    assert balances(studio_client, h) == after
    assert ledger(studio_client.app, job.id) == ["reserve", "settle"]


def test_quota_limit_is_429_in_studio_shape(tmp_path, tiny_cache, frozen_quota_clock):
    app = create_app(make_settings(tmp_path, tiny_cache, quota_per_minute=1, **SMALL_SETTINGS))
    with TestClient(app) as client:
        wait_ready(client)
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        assert client.post(CREATE, headers=h, json={**BODY, "sample": 1}).status_code == 200
        before = balances(client, h)
        r = client.post(CREATE, headers=h, json={**BODY, "sample": 1})
        assert r.status_code == 429 and r.json()["error"] == "Too Many Requests"
        assert balances(client, h) == before


class NsfwEngine(FailingEngine):
    """Draws a checkerboard and scores the first image of each job as NSFW."""

    def __init__(self):
        super().__init__(None)

    async def submit(self, job_id, request, on_progress=None):
        from PIL import Image

        from pixelserve.core.request import GenerationResult

        self.submitted.append(request)
        board = Image.new("RGB", (request.width, request.height), "white")
        for x in range(0, request.width, 8):
            for y in range(0, request.height, 8):
                if (x + y) // 8 % 2:
                    board.paste((0, 0, 0), (x, y, x + 8, y + 8))
        scores = [0.9] + [0.1] * (request.num_images - 1) if request.post.nsfw_check else None
        return GenerationResult(images=[board.copy() for _ in request.seeds], seeds=list(request.seeds),
                                model=request.model, nsfw_scores=scores)


def test_nsfw_images_are_blurred_and_say_why(tmp_path, tiny_cache):
    from tests.api.studio.helpers import decode

    engine = NsfwEngine()
    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS), engine=engine)
    with TestClient(app) as client:
        _, key = new_key(app)
        r = client.post(CREATE, headers={"X-Api-Key": key}, json=BODY)
    assert engine.submitted[0].post.nsfw_check is True
    flagged, clean = r.json()["images"]
    assert flagged["GenerationInfo"]["blurReason"].startswith("nsfw")
    assert clean["GenerationInfo"]["blurReason"] is None
    extremes = lambda im: decode(im["base64"]).convert("L").getextrema()  # noqa: E731
    lo, hi = extremes(flagged)
    assert lo > 40 and hi < 215  # the checkerboard is smeared to greys
    assert extremes(clean)[0] < 20 and extremes(clean)[1] > 235


def test_auth_disabled_everything_belongs_to_owner_zero(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, auth_enabled=False, **SMALL_SETTINGS), engine=NsfwEngine())
    with TestClient(app) as client:
        r = client.post(CREATE, json={**BODY, "sample": 1})
        assert r.status_code == 200, r.text
        assert r.json()["images"][0]["ownerId"] == 0
        assert client.get(f"/api/images/{r.json()['images'][0]['imageId']}").status_code == 200


def test_a_crash_while_writing_the_records_reserves_nothing(studio_client, owner, monkeypatch):
    from pixelserve.db.crud import studio as crud

    _, h = owner
    before = balances(studio_client, h)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(crud, "add_job", broken)  # the service looks crud.add_job up at call time
    r = studio_client.post(CREATE, headers=h, json=BODY)  # the route renders the bug as a Studio 500
    assert r.status_code == 500 and r.json()["statusCode"] == 500
    monkeypatch.undo()
    assert balances(studio_client, h) == before
    with studio_client.app.state.sessions() as s:
        owner_rows = s.scalars(select(CreditEntry).where(CreditEntry.owner_id == owner[0],
                                                         CreditEntry.kind == "reserve")).all()
    assert owner_rows == []


def test_a_crash_before_settlement_settles_once_after_restart(tmp_path, tiny_cache, monkeypatch):
    from pixelserve.service.credits import CreditService

    settings = make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS)
    app = create_app(settings)
    real_settle = CreditService.settle

    def crash(self, session, job_id, refund):
        raise RuntimeError("power cut")

    monkeypatch.setattr(CreditService, "settle", crash)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        start = balances(client, h)["dailyCredit"]
        r = client.post(CREATE, headers=h, json=BODY)
        assert r.status_code == 500
    with app.state.sessions() as s:
        [job] = s.scalars(select(StudioJob)).all()
    assert job.status == "IN_PROGRESS" and ledger(app, job.id) == ["reserve"]  # nothing half-written
    monkeypatch.setattr(CreditService, "settle", real_settle)
    app2 = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS))
    with TestClient(app2) as client:
        wait_ready(client)
        with app2.state.sessions() as s:
            ids = [im.id for im in s.scalars(select(StudioImage)).all()]
        for image_id in ids:
            assert wait_for(client, h, image_id)["generationStatus"] == "COMPLETED"
        assert balances(client, h)["dailyCredit"] == start - 2
    assert ledger(app2, job.id) == ["reserve", "settle"]
