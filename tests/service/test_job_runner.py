"""The background job runner at shutdown: running jobs get the drain time, queued ones stay queued."""

import asyncio

from pixelserve.service.jobs import JobRunner


def run_stop(durations: dict[str, float], grace_s: float):
    events = []
    runner = None

    async def job(job_id):
        events.append(("start", job_id))
        try:
            await asyncio.sleep(durations[job_id])
            events.append(("done", job_id))
        except asyncio.CancelledError:
            events.append(("cancelled", job_id, runner.stopping))
            raise

    async def go():
        nonlocal runner
        runner = JobRunner(job, lambda: list(durations), workers=1)
        await runner.start()
        while not events:
            await asyncio.sleep(0.01)
        await runner.stop(grace_s=grace_s)

    asyncio.run(asyncio.wait_for(go(), 60))
    return events


def test_a_running_job_finishes_within_the_drain_and_queued_ones_are_not_started():
    events = run_stop({"a": 0.3, "b": 0.01}, grace_s=5)
    assert events == [("start", "a"), ("done", "a")]  # "b" stays PENDING in the database for the next start


def test_a_job_longer_than_the_drain_is_cancelled_as_resumable():
    events = run_stop({"a": 30}, grace_s=0.2)
    assert events == [("start", "a"), ("cancelled", "a", True)]  # stopping: run_job leaves it IN_PROGRESS
