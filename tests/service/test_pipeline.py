"""The service pipeline's stages and the events each job publishes, on a fake engine."""

import asyncio

import pytest

from pixelserve.core.request import GenerationRequest
from pixelserve.core.validate import ValidRequest
from pixelserve.db.crud import jobs
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job
from pixelserve.db.session import open_database
from pixelserve.errors import EngineFailure, InvalidRequest
from pixelserve.service.events import EventBus
from pixelserve.service.pipeline import DirectPolicy, Pipeline
from pixelserve.storage.local import LocalImageStore
from pixelserve.storage.signing import UrlSigner
from tests.security.test_fuzz import InstantEngine


class SteppingEngine(InstantEngine):
    """Reports each step, then answers; ``fail`` raises instead of answering; ``refuse`` is its check."""

    def __init__(self, fail: Exception | None = None, refuse: Exception | None = None):
        self.fail, self.refuse = fail, refuse

    def check(self, request):
        if self.refuse is not None:
            raise self.refuse

    async def submit(self, job_id, request, on_progress=None):
        for step in range(1, request.steps + 1):
            on_progress(step, request.steps)
            await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return await super().submit(job_id, request)


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**dict(model="tiny-sd", prompt="a cat", width=64, height=64, steps=3, seeds=(7,)),
                                **changes})


def run(tmp_path, engine, body, subscriber=None):
    """One generate() through a fresh pipeline; returns (outcome, events, job statuses, the key id)."""
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with sessions() as session:
        key, _ = create_key(session, "k", b"test secret")
    bus, events = EventBus(), []
    bus.subscribe("collect", events.append)
    if subscriber is not None:
        bus.subscribe("extra", subscriber)
    pipeline = Pipeline(engine, sessions, LocalImageStore(tmp_path / "images"), UrlSigner(b"s" * 32, 60), bus=bus)

    async def go():
        await bus.start()
        try:
            return await pipeline.generate(body, dialect="karlo", key=key)
        except Exception as e:
            return e
        finally:
            await bus.stop()

    try:
        outcome = asyncio.run(go())
    finally:
        pipeline.close()
    with sessions() as session:
        statuses = {j.id: j.status for j in session.query(Job)}
    return outcome, events, statuses, key.id


def test_a_job_publishes_queued_started_progress_finished(tmp_path):
    result, events, statuses, key_id = run(tmp_path, SteppingEngine(), request())
    assert [e.type for e in events] == ["queued", "started", "progress", "progress", "progress", "finished"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e.job_id for e in events} == {result.job_id} and {e.caller_id for e in events} == {key_id}
    assert [e.data["step"] for e in events if e.type == "progress"] == [1, 2, 3]
    assert events[0].data == {"queue_position": 0}
    finished = events[-1].data
    assert finished["images"] == [{"key": result.images[0].storage_key, "seed": 7}]
    assert statuses == {result.job_id: "succeeded"}


def test_a_failing_job_publishes_failed_and_is_recorded_failed(tmp_path):
    outcome, events, statuses, _ = run(tmp_path, SteppingEngine(fail=EngineFailure("device lost")), request())
    assert isinstance(outcome, EngineFailure)
    assert [e.type for e in events][-1] == "failed" and events[-1].data == {"error": "device lost"}
    assert list(statuses.values()) == ["failed"]


def test_a_refused_request_publishes_nothing_and_records_nothing(tmp_path):
    refused = InvalidRequest("must be 0 to 1 for this model", field="clip_skip")
    outcome, events, statuses, _ = run(tmp_path, SteppingEngine(refuse=refused), request(clip_skip=5))
    assert outcome is refused and events == [] and statuses == {}


def test_a_raising_subscriber_does_not_fail_the_job(tmp_path):
    def broken(event):
        raise RuntimeError("subscriber bug")

    result, events, statuses, _ = run(tmp_path, SteppingEngine(), request(), subscriber=broken)
    assert statuses == {result.job_id: "succeeded"} and events[-1].type == "finished"


def test_only_a_validated_request_is_admitted(tmp_path):
    with pytest.raises(TypeError):
        ValidRequest(request(), None)
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    pipeline = Pipeline(SteppingEngine(), sessions, LocalImageStore(tmp_path / "images"), UrlSigner(b"s" * 32, 60))
    valid = pipeline.validate(request(seeds=None))
    assert valid.request.seeds is not None and valid.model.id == "tiny-sd"

    async def admit_raw():
        await pipeline.admit(request(), dialect="karlo", caller_id=None, policy=DirectPolicy())

    try:
        with pytest.raises(TypeError):
            asyncio.run(admit_raw())
    finally:
        pipeline.close()
    with sessions() as session:
        assert session.query(Job).count() == 0
    assert jobs.FINAL == ("succeeded", "failed", "cancelled")
