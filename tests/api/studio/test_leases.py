"""Studio jobs on leases, for several API replicas on one database: a job whose replica died is
taken over once its lease lapses (not before), and a long job is never taken from a live replica."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from pixelserve.app import create_app
from pixelserve.core.request import GenerationRequest, GenerationResult
from pixelserve.db.crud import studio as crud
from pixelserve.db.models import utcnow
from pixelserve.db.models_studio import StudioJob
from tests.api.karlo.test_engine_errors import FailingEngine
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import balances
from tests.api.studio.test_jobs import ledger
from tests.conftest import make_settings

LEASE = dict(job_lease_seconds=2, studio_job_workers=2, **SMALL_SETTINGS)


class SlowEngine(FailingEngine):
    """Takes ``seconds`` per job (longer than a lease), then returns grey images."""

    def __init__(self, seconds: float):
        super().__init__(None)
        self.seconds = seconds

    async def submit(self, job_id, request, on_progress=None):
        self.submitted.append(job_id)
        await asyncio.sleep(self.seconds)
        return GenerationResult(images=[Image.new("RGB", (request.width, request.height), "grey")
                                        for _ in request.seeds], seeds=list(request.seeds), model=request.model)


def _job_held_elsewhere(app, owner_id: int, lease_left: float) -> str:
    """A paid job that another replica claimed, as that replica wrote it (one transaction)."""
    studio = app.state.studio
    request = studio.pipeline.validate(GenerationRequest(model=studio.model().id, prompt="a cat", width=64,
                                                         height=64, steps=2, num_images=2, seeds=(1, 2))).request
    images = [dict(index=i, seed=s, resolution="64x64", platform="web", ratio="1:1", prompts={}, variation_id=i)
              for i, s in enumerate(request.seeds)]
    job_id = "job-of-a-dead-replica"
    with app.state.sessions() as s:
        studio.credits.reserve(s, owner_id, job_id, 2)
        crud.add_job(s, job_id, owner_id, "create", {"request": request.describe(), "reference_key": None}, 1, images)
        job = s.get(StudioJob, job_id)
        job.status, job.worker_id, job.attempts = "IN_PROGRESS", "replica-that-died", 1
        job.lease_expires_at = utcnow() + timedelta(seconds=lease_left)
        s.commit()
    return job_id


def _job(app, job_id: str) -> StudioJob:
    with app.state.sessions() as s:
        return s.get(StudioJob, job_id)


def test_a_dead_replicas_job_is_taken_over_when_its_lease_lapses(tmp_path, tiny_cache):
    engine = SlowEngine(0.1)
    app = create_app(make_settings(tmp_path, tiny_cache, **LEASE), engine=engine)
    with TestClient(app) as client:
        owner_id, key = new_key(app)
        h = {"X-Api-Key": key}
        start = balances(client, h)["dailyCredit"]
        job_id = _job_held_elsewhere(app, owner_id, lease_left=2.5)
        time.sleep(1.0)  # two sweeps of this replica: the lease is still live, the job is not touched
        job = _job(app, job_id)
        assert (job.status, job.worker_id, engine.submitted) == ("IN_PROGRESS", "replica-that-died", [])
        deadline = time.monotonic() + 15
        while _job(app, job_id).status != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(0.1)
        job = _job(app, job_id)
        assert job.status == "COMPLETED" and job.worker_id == app.state.studio.worker_id
        assert job.attempts == 2 and engine.submitted == [job_id]
        assert ledger(app, job_id) == ["reserve", "settle"]
        assert balances(client, h)["dailyCredit"] == start - 2  # charged once


def test_a_job_longer_than_its_lease_stays_with_its_replica(tmp_path, tiny_cache):
    engine = SlowEngine(4.0)  # twice the lease: only the heartbeat keeps it
    app = create_app(make_settings(tmp_path, tiny_cache, **LEASE), engine=engine)
    with TestClient(app) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        r = client.post("/api/images/create", headers=h,
                        json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1})
        assert r.status_code == 200, r.text
        with app.state.sessions() as s:
            [job] = s.scalars(select(StudioJob)).all()
    assert job.status == "COMPLETED" and job.attempts == 1
    assert len(engine.submitted) == 1  # the idle second worker never took it over
    assert ledger(app, job.id) == ["reserve", "settle"]


def test_a_restart_leaves_a_live_replicas_job_alone(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS), engine=SlowEngine(0.1))
    with TestClient(app):
        owner_id, _ = new_key(app)
        job_id = _job_held_elsewhere(app, owner_id, lease_left=300)
    with app.state.sessions() as s:
        assert crud.requeue_interrupted(s) == []  # another replica's live lease: not interrupted
        job = s.get(StudioJob, job_id)
        job.lease_expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
        assert crud.requeue_interrupted(s) == [job_id]  # lapsed: back in the queue
