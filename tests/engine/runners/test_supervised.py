"""The engine in a supervised worker process: kill -9 mid-job loses nothing, answers come once."""

import asyncio
import io
import os
import signal
from pathlib import Path

import pytest
from PIL import Image

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.runners.supervised import SupervisedEngine, _Pending
from pixelserve.errors import EngineFailure, NotFound


def req(**kw):
    base = dict(model="tiny-sd", prompt="a cat", width=64, height=64, steps=3, seeds=(1,))
    base.update(kw)
    return GenerationRequest(**base)


async def started(tiny_cache, **kw):
    engine = SupervisedEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, **kw)
    await engine.start()
    await engine.wait_ready()
    assert engine.health().ready
    return engine


def kill_at_step(engine, kills: list, wanted: int, at: int = 2):
    """A progress callback that kill -9s the worker at step ``at``, ``wanted`` times in all."""
    def on_progress(step, total):
        pid = engine.worker_pid
        if step == at and pid not in kills and len(kills) < wanted:
            kills.append(pid)
            os.kill(pid, signal.SIGKILL)
    return on_progress


def test_generates_in_the_worker_like_the_local_engine(tiny_cache):
    """Steps and live previews come over the pipe: previews to a callback that takes them, plain steps
    to a two-argument one."""
    async def go():
        engine = await started(tiny_cache, preview_every=2)
        steps, previewed = [], []
        try:
            res = await engine.submit("j", req(steps=3), lambda s, t: steps.append((s, t)))
            await engine.submit("p", req(steps=4, height=48), lambda s, t, p: previewed.append((s, t, p)))
            with pytest.raises(NotFound):
                engine.check(req(model="nope"))
            return res, steps, previewed, engine.worker_pid
        finally:
            await engine.stop()

    res, steps, previewed, pid = asyncio.run(go())
    assert pid != os.getpid()
    assert [im.size for im in res.images] == [(64, 64)] and res.seeds == [1]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert [(s, t) for s, t, _ in previewed] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [s for s, _, p in previewed if p is not None] == [2, 4]
    assert all(Image.open(io.BytesIO(p)).size == (64, 48) for _, _, p in previewed if p is not None)


def test_a_killed_worker_is_replaced_and_the_job_retried_once(tiny_cache):
    async def go():
        engine = await started(tiny_cache)
        try:
            kills = []
            first_pid = engine.worker_pid
            res = await engine.submit("j", req(steps=6), kill_at_step(engine, kills, 1))
            after = await engine.submit("k", req())  # the new worker goes on serving
            return res, after, kills, first_pid, engine
        finally:
            await engine.stop()

    res, after, kills, first_pid, engine = asyncio.run(go())
    assert kills == [first_pid] and engine.restarts == 1
    assert len(res.images) == 1 and len(after.images) == 1


def test_a_job_whose_worker_dies_twice_fails(tiny_cache):
    async def go():
        engine = await started(tiny_cache)
        try:
            kills = []
            with pytest.raises(EngineFailure, match="died 2 times"):
                await engine.submit("j", req(steps=6), kill_at_step(engine, kills, 2))
            await engine.wait_ready()  # the third worker is starting (503 NotReady until then)
            return len(kills), await engine.submit("k", req())
        finally:
            await engine.stop()

    killed, after = asyncio.run(go())
    assert killed == 2 and len(after.images) == 1


def test_the_parent_runs_the_model_aware_checks_with_the_workers_tokenizers(tiny_cache):
    """The worker sends each model's tokenizers once it is ready; the API process checks with them
    before anything is recorded, as the local engine does."""
    from pixelserve.errors import InvalidRequest

    async def go():
        engine = await started(tiny_cache)
        try:
            with pytest.raises(InvalidRequest) as e:
                engine.check(req(prompt="abcdefgh " * 200, prompt_weighting=True))
            with pytest.raises(InvalidRequest) as skip:
                engine.check(req(clip_skip=10))
            engine.check(req(prompt="(a cat:1.3)", prompt_weighting=True))
            ok = await engine.submit("short", req(prompt="(a cat:1.3)", prompt_weighting=True))
            return e.value, skip.value, ok
        finally:
            await engine.stop()

    err, skip, ok = asyncio.run(go())
    assert err.field == "prompt" and "231" in err.message
    assert skip.field == "clip_skip" and "must be 0 to 1 for this model" in skip.message
    assert len(ok.images) == 1


def test_a_hung_worker_loses_its_lease_and_the_job_moves_to_a_new_one(tiny_cache):
    """SIGSTOP freezes the worker mid-job (alive, but no step and no heartbeat): once the job's
    lease runs out the supervisor kills it and the job finishes on the replacement."""
    async def go():
        engine = await started(tiny_cache, lease_s=8.0)
        stopped = []

        def freeze_at_step_2(step, total):
            if step == 2 and not stopped:
                stopped.append(engine.worker_pid)
                os.kill(engine.worker_pid, signal.SIGSTOP)

        try:
            res = await engine.submit("frozen", req(steps=6), freeze_at_step_2)
            return res, stopped, engine.worker_pid, engine.restarts, engine.lease_expiries
        finally:
            await engine.stop()

    res, stopped, pid, restarts, expiries = asyncio.run(go())
    assert len(res.images) == 1
    assert stopped and pid != stopped[0] and restarts == 1 and expiries == 1


def test_leases_are_renewed_by_steps_and_by_heartbeats_for_queued_jobs(monkeypatch):
    """The lease bookkeeping with a fake clock and a fake worker: a running job's lease moves with
    each step it reports, a queued job's with each heartbeat naming it; the one that hears
    nothing expires. (Real timing: the hung-worker test above.)"""
    import time

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    async def go():
        engine = SupervisedEngine({}, Path("."), lease_s=10.0)
        engine._loop, engine._ready, engine._generation, engine._proc = asyncio.get_running_loop(), True, 1, object()
        engine._conn = type("Pipe", (), {"send": lambda self, m: None})()
        for job_id in ("running", "queued", "silent"):
            engine._pending[job_id] = _Pending(req(), engine._loop.create_future(), None)
            engine._hand_over(job_id, engine._pending[job_id])
        clock[0] += 8
        engine._on_message(("progress", "running", 1, 30))
        engine._on_message(("heartbeat", ["queued"]))
        clock[0] += 5  # 13 s after hand-over: only "silent" heard nothing for over 10 s
        first = engine.expired_leases(clock[0])
        clock[0] += 6  # 19 s: the others' renewals (at 8 s) have run out too
        second = engine.expired_leases(clock[0])
        engine._ready = False  # a worker being replaced holds no leases
        third = engine.expired_leases(clock[0])
        for p in engine._pending.values():
            p.future.cancel()
        return first, second, third

    first, second, third = asyncio.run(go())
    assert first == ["silent"]
    assert sorted(second) == ["queued", "running", "silent"]
    assert third == []
