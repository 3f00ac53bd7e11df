"""Which requests may share a pipeline call, and the keyed queue that hands them out together."""

import asyncio
import time

import pytest
from PIL import Image

from pixelserve.core.request import GenerationRequest, LoraRef, PostProcess
from pixelserve.engine.runners.batching import BatchQueue, batch_key


def req(**kw):
    base = dict(model="tiny-sd", prompt="a cat", width=64, height=64, steps=3, seeds=(1,))
    base.update(kw)
    return GenerationRequest(**base)


def test_prompts_and_seeds_may_differ_inside_a_batch():
    assert batch_key(req()) == batch_key(req(prompt="a dog", negative_prompt="blur", seeds=(5, 6), num_images=2))


@pytest.mark.parametrize("change", [
    dict(steps=4), dict(width=72), dict(guidance_scale=3.0), dict(scheduler="euler"), dict(model="tiny-sdxl"),
    dict(loras=(LoraRef("x", "/x.safetensors", 0.5),)), dict(post=PostProcess(nsfw_check=True)),
])
def test_shared_settings_must_match(change):
    assert batch_key(req()) != batch_key(req(**change))


@pytest.mark.parametrize("alone", [
    dict(task="img2img", init_image=Image.new("RGB", (64, 64)), strength=0.5),
    dict(use_refiner=True), dict(post=PostProcess(upscale=2)),
])
def test_requests_with_per_request_inputs_run_alone(alone):
    assert batch_key(req(**alone)) is None


def run(coro):
    return asyncio.run(coro)


def test_batch_takes_compatible_jobs_from_behind_and_keeps_the_rest_in_order():
    async def go():
        q = BatchQueue(10, key=batch_key)
        for r in [req(prompt="a"), req(steps=9, prompt="b"), req(prompt="c"), req(prompt="d", seeds=(1, 2),
                                                                                   num_images=2)]:
            q.put_nowait(r)
        first = await q.get_batch(3, 0.0, lambda r: r.num_images)
        second = await q.get_batch(3, 0.0, lambda r: r.num_images)
        return [r.prompt for r in first], [r.prompt for r in second], q.qsize()

    first, second, left = run(go())
    assert first == ["a", "c"]  # "d" has 2 images: 1 + 1 + 2 is over the batch size of 3
    assert second == ["b"] and left == 1


def test_an_unbatchable_job_does_not_wait_for_the_delay():
    async def go():
        q = BatchQueue(10, key=batch_key)
        q.put_nowait(req(use_refiner=True))
        t = time.perf_counter()
        batch = await q.get_batch(8, 5.0, lambda r: r.num_images)
        return batch, time.perf_counter() - t

    batch, took = run(go())
    assert len(batch) == 1 and took < 1.0


def test_a_batchable_job_waits_for_latecomers_up_to_the_delay():
    async def go():
        q = BatchQueue(10, key=batch_key)
        q.put_nowait(req(prompt="early"))

        async def late():
            await asyncio.sleep(0.05)
            q.put_nowait(req(prompt="late"))

        asyncio.get_running_loop().create_task(late())
        return [r.prompt for r in await q.get_batch(2, 2.0, lambda r: r.num_images)]

    assert run(go()) == ["early", "late"]


async def _trickle(q, gaps_s, prompts):
    for gap, prompt in zip(gaps_s, prompts):
        await asyncio.sleep(gap)
        q.put_nowait(req(prompt=prompt))


def _burst_batch(max_wait_s: float, gaps_s: list[float], delay_s: float = 0.25):
    """One job queued, then more arriving ``gaps_s`` apart; the first batch and how long it took."""
    async def go():
        q = BatchQueue(64, key=batch_key)
        q.put_nowait(req(prompt="p0"))
        prompts = [f"p{i + 1}" for i in range(len(gaps_s))]
        feeder = asyncio.get_running_loop().create_task(_trickle(q, gaps_s, prompts))
        t = time.perf_counter()
        batch = await q.get_batch(16, delay_s, lambda r: r.num_images, max_wait_s)
        took = time.perf_counter() - t
        feeder.cancel()
        return [r.prompt for r in batch], took

    return run(go())


def test_a_burst_arriving_a_few_ms_apart_fills_one_batch():
    # Arrivals 150 ms apart, each within the 250 ms delay of the one before: the wait restarts at
    # each one, so all four join; a fixed 250 ms window from the first job takes only two.
    gaps = [0.15, 0.15, 0.15]
    extended, _ = _burst_batch(5.0, gaps)
    fixed, _ = _burst_batch(0.0, gaps)
    assert extended == ["p0", "p1", "p2", "p3"]
    assert fixed == ["p0", "p1"]


def test_a_burst_that_never_stops_is_cut_at_the_max_wait():
    batch, took = _burst_batch(0.4, [0.1] * 30)
    assert 3 <= len(batch) <= 6  # jobs of the first ~0.4 s, not all 31
    assert 0.35 <= took < 1.5


def test_a_lone_job_waits_only_the_delay_not_the_max_wait():
    batch, took = _burst_batch(5.0, [])
    assert batch == ["p0"]
    assert 0.2 <= took < 1.5


def test_full_queue_refuses():
    async def go():
        q = BatchQueue(1, key=batch_key)
        q.put_nowait(req())
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(req())

    run(go())


# -- the engine stacking compatible jobs ---------------------------------------------------------
#: Batched kernels may sum floats in another order than a batch of one; pixels may differ by this.
BATCH_TOLERANCE = 2


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_same_seed_same_image_batched_or_alone(tiny_cache, model):
    import numpy as np

    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.runners.local import LocalEngine

    requests = [req(model=model, prompt=p, seeds=(s,), negative_prompt=n)
                for p, s, n in [("a red cube", 11, None), ("a blue ball", 22, "blur"), ("a green cone", 33, None)]]

    async def go(batch_size):
        engine = LocalEngine(demo_config().models, tiny_cache, max_batch_size=batch_size, max_batch_delay_ms=200)
        await engine.start()
        await engine.wait_ready()
        try:
            results = await asyncio.gather(*(engine.submit(f"j{i}", r) for i, r in enumerate(requests)))
        finally:
            await engine.stop()
        return [np.asarray(res.images[0], dtype=int) for res in results], [res.timings_ms["batch_size"]
                                                                           for res in results]

    alone, alone_sizes = run(go(1))
    batched, batched_sizes = run(go(8))
    assert alone_sizes == [1.0, 1.0, 1.0]
    assert batched_sizes == [3.0, 3.0, 3.0]  # all three ran in one pipeline call
    for a, b in zip(alone, batched):
        assert np.abs(a - b).max() <= BATCH_TOLERANCE
    assert np.abs(batched[0] - batched[1]).max() > 10  # and each kept its own prompt and seed


def test_the_readme_states_the_batching_tolerance_the_tests_allow():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert f"batched or alone, to within {BATCH_TOLERANCE}/255 per pixel" in readme


def test_a_batch_out_of_memory_is_retried_one_job_at_a_time(tiny_cache, monkeypatch):
    import torch

    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.runners.local import LocalEngine

    async def go():
        engine = LocalEngine(demo_config().models, tiny_cache, max_batch_size=8, max_batch_delay_ms=200)
        await engine.start()
        await engine.wait_ready()
        real, sizes = engine._run, []

        def oom_when_batched(batch, device, loop):
            sizes.append(len(batch))
            if len(batch) > 1:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(batch, device, loop)

        monkeypatch.setattr(engine, "_run", oom_when_batched)
        try:
            results = await asyncio.gather(*(engine.submit(f"j{i}", req(prompt=f"p{i}", seeds=(i,)))
                                             for i in range(3)))
        finally:
            await engine.stop()
        return results, sizes

    results, sizes = run(go())
    assert sizes == [3, 1, 1, 1]
    assert all(len(r.images) == 1 and r.timings_ms["batch_size"] == 1.0 for r in results)
