"""service/pipeline.py keeps each job's record on one writer thread: concurrent requests never
contend for the database's write lock (SQLite's busy handler sleeps in steps of milliseconds), and
a job's writes land in the order they were made (queued, running, succeeded)."""

import asyncio
import threading

from pixelserve.core.request import GenerationRequest
from pixelserve.db.crud import jobs
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job
from pixelserve.db.session import open_database
from pixelserve.service.pipeline import Pipeline
from pixelserve.storage.local import LocalImageStore
from pixelserve.storage.signing import UrlSigner
from tests.security.test_fuzz import InstantEngine


class SteppingEngine(InstantEngine):
    """Reports one step (the job turns running), then answers at once."""

    async def submit(self, job_id, request, on_progress=None):
        on_progress(1, 1)
        await asyncio.sleep(0.01)
        return await super().submit(job_id, request)


def test_concurrent_jobs_record_on_one_thread_in_order(tmp_path, monkeypatch):
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with sessions() as session:
        key, _ = create_key(session, "k", b"test secret")
    writes: list[tuple[str, str, str]] = []  # (what, job id, thread)
    for name in ("create_job", "mark_running", "finish_job"):
        original = getattr(jobs, name)

        def recorded(session, job_id, *args, _original=original, _name=name, **kw):
            writes.append((_name, job_id, threading.current_thread().name))
            return _original(session, job_id, *args, **kw)

        monkeypatch.setattr(jobs, name, recorded)
    service = Pipeline(SteppingEngine(), sessions, LocalImageStore(tmp_path / "images"),
                                UrlSigner(b"s" * 32, 60))

    async def go():
        return await asyncio.gather(*(service.generate(
            GenerationRequest(model="tiny-sd", prompt=f"a cat {i}", width=64, height=64, steps=2, seeds=(i,)),
            dialect="karlo", key=key) for i in range(12)))

    try:
        results = asyncio.run(go())
    finally:
        service.close()
    assert len(results) == 12 and len({w[2] for w in writes}) == 1 and writes[0][2].startswith("job-records")
    for r in results:
        mine = [what for what, job_id, _ in writes if job_id == r.job_id]
        assert mine == ["create_job", "mark_running", "finish_job"]
        with sessions() as session:
            assert session.get(Job, r.job_id).status == "succeeded"
