"""The in-process engine: queue bounds, cancellation, progress, failures that leave it serving."""

import asyncio
import gc
import threading

import pytest
import torch

from pixelserve.core.model_config import ModelSpec, demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.runners.local import LocalEngine
from pixelserve.errors import Cancelled, EngineFailure, NotReady, Overloaded
from tests.engine.helpers import cancel_at, started


def req(**kw):
    base = dict(model="tiny-sd", prompt="a cat", width=64, height=64, steps=3, seeds=(1,))
    base.update(kw)
    return GenerationRequest(**base)


def run(coro):
    return asyncio.run(coro)


def test_generates_with_progress_in_order(tiny_cache):
    async def go():
        engine = await started(tiny_cache)
        steps = []
        try:
            res = await engine.submit("j", req(steps=4, seeds=(1, 2), num_images=2),
                                      lambda s, t: steps.append((s, t)))
        finally:
            await engine.stop()
        return res, steps

    res, steps = run(go())
    assert [im.size for im in res.images] == [(64, 64), (64, 64)] and res.seeds == [1, 2]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert res.timings_ms["run"] > 0


def test_not_ready_before_models_load(tiny_cache):
    async def go():
        engine = LocalEngine(demo_config().models, tiny_cache)
        await engine.start()
        assert engine.health().ready is False
        with pytest.raises(NotReady):
            await engine.submit("j", req())
        await engine.wait_ready()
        assert engine.health().ready is True
        await engine.stop()

    run(go())


def test_loading_failure_is_reported_not_ready(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")

    async def go():
        engine = LocalEngine({"b": ModelSpec("b", "sd", bad)}, tmp_path)
        await engine.start()
        await engine.wait_ready()
        h = engine.health()
        await engine.stop()
        return h

    h = run(go())
    assert h.ready is False and "safetensors" in h.loading_error


def test_full_queue_answers_overloaded(tiny_cache, monkeypatch):
    release = threading.Event()

    async def go():
        engine = await started(tiny_cache, max_queue=1)
        monkeypatch.setattr(engine, "_run", lambda batch, device, loop: (release.wait(10), [([], None)] * len(batch))[1])
        first = asyncio.create_task(engine.submit("a", req()))
        while engine.health().running == 0:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(engine.submit("b", req()))
        await asyncio.sleep(0.05)
        assert engine.health().queue_depth == 1
        with pytest.raises(Overloaded):
            await engine.submit("c", req())
        release.set()
        await asyncio.gather(first, second)
        await engine.stop()

    run(go())


def test_cancel_stops_a_running_job_and_the_worker_goes_on(tiny_cache):
    async def go():
        engine = await started(tiny_cache)
        progress, seen = cancel_at(engine, "long")
        with pytest.raises(Cancelled):
            await engine.submit("long", req(steps=200), progress)
        after = await engine.submit("next", req())
        await engine.stop()
        return seen, after

    seen, after = run(go())
    assert max(seen) < 200  # stopped between steps, not after all of them
    assert len(after.images) == 1


def test_abandoned_waiter_cancels_its_job(tiny_cache):
    """A client that goes away (its request task is cancelled) stops its engine job, and the job's
    settling ("cancelled while running") is read by the engine: asyncio.shield drops its own reader
    with the cancelled waiter, and asyncio would log "Future exception was never retrieved"."""
    reported = []

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context["message"]))
        engine = await started(tiny_cache)
        seen = []
        task = asyncio.create_task(engine.submit("gone", req(steps=300), lambda s, t: seen.append(s)))
        while not seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        while engine.health().running:
            await asyncio.sleep(0.01)
        n = len(seen)
        await engine.stop()
        return n

    assert run(go()) < 300
    gc.collect()  # the engine and its jobs are dropped here: an unread exception would be reported now
    assert not [m for m in reported if "never retrieved" in m], reported


def test_out_of_memory_fails_the_job_not_the_engine(tiny_cache, monkeypatch):
    async def go():
        engine = await started(tiny_cache)
        real = engine._run
        calls = []

        def oom_once(batch, device, loop):
            calls.append(batch[0].id)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(batch, device, loop)

        monkeypatch.setattr(engine, "_run", oom_once)
        with pytest.raises(EngineFailure, match="out of memory"):
            await engine.submit("oom", req())
        ok = await engine.submit("after", req())
        await engine.stop()
        return ok

    assert len(run(go()).images) == 1


def test_every_task_runs_on_both_families(tiny_cache):
    from PIL import Image

    init = Image.new("RGB", (64, 64), "gray")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))

    async def go():
        engine = await started(tiny_cache)
        out = {}
        for model in ("tiny-sd", "tiny-sdxl"):
            for task, extra in (("txt2img", {}), ("img2img", {"init_image": init, "strength": 0.5}),
                                ("inpaint", {"init_image": init, "mask_image": mask, "strength": 0.9})):
                res = await engine.submit(f"{model}-{task}", req(model=model, task=task, scheduler="euler_a", **extra))
                out[(model, task)] = res.images[0].size
        await engine.stop()
        return out

    sizes = run(go())
    assert len(sizes) == 6 and set(sizes.values()) == {(64, 64)}


def test_sdxl_refiner_finishes_the_last_steps(tiny_cache):
    import numpy as np

    from pixelserve.engine.demo import tiny

    base = tiny.ensure_tiny_model("sdxl", tiny_cache / "tiny")
    refiner = tiny.ensure_tiny_model("sdxl-refiner", tiny_cache / "tiny")

    async def go():
        engine = LocalEngine({"xl": ModelSpec("xl", "sdxl", base, refiner=refiner)}, tiny_cache)
        await engine.start()
        await engine.wait_ready()
        steps = []
        refined = await engine.submit("a", req(model="xl", steps=10), lambda s, t: steps.append(s))
        plain = await engine.submit("b", req(model="xl", steps=10, use_refiner=False))
        model = engine.registry.get("xl", "cpu")
        shared = model.refiner.vae is model.pipe.vae and model.refiner.text_encoder_2 is model.pipe.text_encoder_2
        info = engine.models()[0]
        await engine.stop()
        return refined.images[0], plain.images[0], steps, shared, info

    refined, plain, steps, shared, info = run(go())
    assert steps == list(range(1, 11))  # 8 base steps, then 2 refiner steps, reported as one job
    assert shared and info.has_refiner
    assert np.abs(np.asarray(refined, dtype=int) - np.asarray(plain, dtype=int)).max() > 0


def test_postprocess_runs_only_the_post_steps_on_a_given_image(tiny_cache):
    from PIL import Image

    from pixelserve.core.request import PostProcess

    source = Image.new("RGB", (64, 48), (200, 30, 30))

    async def go():
        engine = await started(tiny_cache)
        try:
            return await engine.postprocess("p", req(post=PostProcess(upscale=2)), source)
        finally:
            await engine.stop()

    res = run(go())
    assert [im.size for im in res.images] == [(128, 96)]
    assert res.seeds == [1]


def test_check_refuses_an_unknown_model_before_queueing(tiny_cache):
    from pixelserve.errors import NotFound

    engine = LocalEngine(demo_config().models, tiny_cache)
    with pytest.raises(NotFound):
        engine.check(req(model="nope"))
    engine.check(req())  # a known model passes


def test_a_job_not_started_by_its_deadline_is_refused_not_run_late(tiny_cache, monkeypatch):
    release = threading.Event()
    ran = []

    async def go():
        engine = await started(tiny_cache, start_deadline_s=0.2)
        real = engine._run

        def slow_first(batch, device, loop):
            ran.extend(job.id for job in batch)
            if batch[0].id == "first":
                release.wait(10)
            return real(batch, device, loop)

        monkeypatch.setattr(engine, "_run", slow_first)
        first = asyncio.create_task(engine.submit("first", req()))
        while engine.health().running == 0:
            await asyncio.sleep(0.01)
        late = asyncio.create_task(engine.submit("late", req(steps=4)))  # another key: not batched with "first"
        await asyncio.sleep(0.5)  # "late" waits past its deadline behind "first"
        release.set()
        ok = await first
        with pytest.raises(Overloaded, match="not started within"):
            await late
        await engine.stop()
        return ok

    assert len(run(go()).images) == 1
    assert ran == ["first"]  # the late job never ran


def test_nsfw_scoring_runs_off_the_device_thread_while_the_next_job_denoises(tiny_cache, monkeypatch):
    from pixelserve.core.request import PostProcess
    from pixelserve.engine import post

    next_job_done = threading.Event()
    scored_on = []

    def slow_scores(images):
        scored_on.append(threading.current_thread().name)
        # Only returns once the job queued behind this one has run: on the device thread it never would.
        assert next_job_done.wait(120), "the next job did not run while this one was being scored"
        return [0.25 for _ in images]

    monkeypatch.setattr(post, "nsfw_scores", slow_scores)

    async def go():
        engine = await started(tiny_cache)
        try:
            first = asyncio.ensure_future(engine.submit("a", req(post=PostProcess(nsfw_check=True))))
            await asyncio.sleep(0)
            second = await engine.submit("b", req(seeds=(2,)))
            next_job_done.set()
            return await first, second
        finally:
            await engine.stop()

    first, second = run(go())
    assert first.nsfw_scores == [0.25] and second.nsfw_scores is None
    assert scored_on and scored_on[0].startswith("engine-post") and "nsfw" in first.timings_ms


def test_a_job_past_its_deadline_is_stopped_not_left_running(tiny_cache):
    from pixelserve.errors import DeadlineExceeded

    async def go():
        engine = await started(tiny_cache, deadline_s=1.0)
        steps = []
        with pytest.raises(DeadlineExceeded, match="not finished within 1 s") as e:
            await engine.submit("slow", req(steps=500), lambda s, t: steps.append(s))
        assert e.value.retry_after and isinstance(e.value, Overloaded)  # a 503 with Retry-After
        while engine.health().running:  # the worker leaves the job at its next step
            await asyncio.sleep(0.01)
        stopped_at = len(steps)
        await asyncio.sleep(0.3)
        after = await engine.submit("next", req())  # and serves the next one
        await engine.stop()
        return steps, stopped_at, after

    steps, stopped_at, after = run(go())
    assert 0 < stopped_at < 500 and len(steps) == stopped_at  # no step ran after it stopped
    assert len(after.images) == 1


def test_out_of_memory_alone_is_a_clear_retryable_error(tiny_cache, monkeypatch):
    from pixelserve.errors import OutOfMemory, status_of

    async def go():
        engine = await started(tiny_cache)

        def oom(batch, device, loop):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")

        monkeypatch.setattr(engine, "_run", oom)
        with pytest.raises(OutOfMemory) as e:
            await engine.submit("big", req(width=128, height=96, num_images=2, seeds=(1, 2)))
        await engine.stop()
        return e.value

    error = run(go())
    assert "out of memory on cpu for 2 image(s) of 128x96" in str(error) and "smaller" in str(error)
    assert status_of(error) == 503 and error.retry_after
