"""The job event bus: a subscriber that raises or falls behind never fails or delays a job."""

import asyncio

import pytest

from pixelserve.service.events import EventBus, log_finished


def publish_job(bus: EventBus, job_id: str, steps: int = 3) -> None:
    common = dict(dialect="karlo", model="tiny-sd", caller_id=1)
    bus.publish("queued", job_id, queue_position=0, **common)
    bus.publish("started", job_id, **common)
    for step in range(1, steps + 1):
        bus.publish("progress", job_id, step=step, steps=steps, **common)
    bus.publish("finished", job_id, images=[{"key": "k", "seed": 1}], timings_ms={"engine": 5.0}, **common)


def test_every_subscriber_gets_each_event_in_order_with_per_job_ids():
    async def go():
        bus, got = EventBus(), {"a": [], "b": []}
        bus.subscribe("a", got["a"].append)

        async def slow_but_async(event):
            got["b"].append(event)

        bus.subscribe("b", slow_but_async)
        await bus.start()
        publish_job(bus, "j1")
        publish_job(bus, "j2", steps=1)
        await bus.stop()
        return got

    got = asyncio.run(go())
    for events in got.values():
        j1 = [(e.type, e.seq) for e in events if e.job_id == "j1"]
        assert j1 == [("queued", 1), ("started", 2), ("progress", 3), ("progress", 4), ("progress", 5),
                      ("finished", 6)]
        assert [e.seq for e in events if e.job_id == "j2"] == [1, 2, 3, 4]
    assert got["a"][2].data == {"step": 1, "steps": 3}


def test_a_raising_subscriber_is_counted_and_the_others_still_get_everything(caplog):
    async def go():
        bus, got = EventBus(), []

        def broken(event):
            raise RuntimeError("subscriber bug")

        bus.subscribe("broken", broken)
        bus.subscribe("ok", got.append)
        await bus.start()
        publish_job(bus, "j")  # publish itself never raises
        await bus.stop()
        return bus, got

    bus, got = asyncio.run(go())
    assert len(got) == 6
    assert bus.stats()["broken"] == {"waiting": 0, "dropped": 0, "errors": 6}
    assert "subscriber bug" in caplog.text


def test_a_stuck_subscriber_drops_past_its_queue_and_publishing_does_not_wait():
    async def go():
        bus, release = EventBus(), asyncio.Event()

        async def stuck(event):
            await release.wait()

        bus.subscribe("stuck", stuck, maxsize=4)
        await bus.start()
        await asyncio.sleep(0)  # the handler takes its first event and blocks
        for i in range(100):  # all of these return while the handler is still blocked
            publish_job(bus, f"j{i}")
        stats = bus.stats()["stuck"]
        release.set()
        await bus.stop(timeout_s=1)
        return stats

    stats = asyncio.run(go())
    assert stats["dropped"] == 600 - 4 and stats["waiting"] == 4  # 600 events; the queue holds 4


def test_names_are_unique_and_the_log_subscriber_writes_one_line_per_ended_job(caplog):
    bus = EventBus()
    bus.subscribe("log", log_finished)
    with pytest.raises(ValueError):
        bus.subscribe("log", log_finished)

    async def go():
        await bus.start()
        publish_job(bus, "j-ok")
        bus.publish("failed", "j-bad", dialect="octoai", model="tiny-sdxl", caller_id=None, error="boom")
        await bus.stop()

    with caplog.at_level("INFO", logger="pixelserve.service.events"):
        asyncio.run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "pixelserve.service.events"]
    assert len(lines) == 2
    assert lines[0].startswith("job j-ok finished: dialect=karlo model=tiny-sd images=1 engine=5ms")
    assert lines[1] == "job j-bad failed: dialect=octoai model=tiny-sdxl error=boom"
