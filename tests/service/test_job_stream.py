"""The job stream (the jobs API's memory of each job's events): queue positions re-sent as jobs ahead
start, ended jobs' events dropped after the keep time, previews bounded to a running job's latest."""

from __future__ import annotations

from pixelserve.service.events import EventBus
from pixelserve.service.job_stream import JobStream


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish(bus: EventBus, stream: JobStream, type: str, job_id: str, **data):
    """Publish and hand the event to the stream at once (the bus's own task is not running here)."""
    stream.handle(bus.publish(type, job_id, dialect="octoai", model="sd", caller_id=1, **data))


def test_a_waiting_job_is_told_its_new_position_when_a_job_ahead_starts():
    bus, clock = EventBus(), Clock()
    stream = JobStream(bus, 300, clock=clock)
    publish(bus, stream, "queued", "a", queue_position=0)
    publish(bus, stream, "queued", "b", queue_position=1)
    publish(bus, stream, "queued", "c", queue_position=2)
    publish(bus, stream, "started", "a")
    assert [(e.type, e.seq, e.data) for e in stream.log("b").events] == [
        ("queued", 1, {"queue_position": 1}), ("queued", 2, {"queue_position": 0})]
    assert stream.log("c").queue_position == 1 and stream.log("c").last_seq == 2
    publish(bus, stream, "started", "b")  # its next seq follows the re-sent one
    assert [(e.type, e.seq) for e in stream.log("b").events] == [("queued", 1), ("queued", 2), ("started", 3)]
    assert stream.log("b").status == "running" and stream.log("b").queue_position is None
    assert [e.data["queue_position"] for e in stream.log("c").events] == [2, 1, 0]
    publish(bus, stream, "cancelled", "c", error="cancelled by its caller")  # ends without starting
    publish(bus, stream, "finished", "a", images=[], timings_ms={})
    assert [e.type for e in stream.log("c").events] == ["queued"] * 3 + ["cancelled"]


def test_a_position_is_not_re_sent_while_the_jobs_own_next_event_is_on_the_way():
    bus = EventBus()
    stream = JobStream(bus, 300)
    publish(bus, stream, "queued", "a", queue_position=0)
    publish(bus, stream, "queued", "b", queue_position=1)
    late = bus.publish("started", "b", dialect="octoai", model="sd", caller_id=1)  # not handled yet
    publish(bus, stream, "started", "a")
    stream.handle(late)
    assert [(e.type, e.seq) for e in stream.log("b").events] == [("queued", 1), ("started", 2)]


def test_an_ended_jobs_events_are_dropped_after_the_keep_time_and_bounded_in_count():
    bus, clock = EventBus(), Clock()
    stream = JobStream(bus, 300, max_ended=2, clock=clock)
    for job_id in ("a", "b"):
        publish(bus, stream, "queued", job_id, queue_position=0)
        publish(bus, stream, "finished", job_id, images=[], timings_ms={})
    clock.now += 299
    assert stream.log("a") is not None and stream.log("a").final.seq == 2
    clock.now += 2
    assert stream.log("a") is None and stream.log("b") is None
    for job_id in ("c", "d", "e"):  # one more ended job than kept: the oldest goes at once
        publish(bus, stream, "queued", job_id, queue_position=0)
        publish(bus, stream, "failed", job_id, error="boom")
    assert stream.log("c") is None and stream.log("d") is not None and stream.log("e") is not None
    publish(bus, stream, "queued", "running", queue_position=0)
    clock.now += 10_000  # a job that has not ended is never dropped
    assert stream.log("running") is not None and len(stream) == 1


def test_only_a_running_jobs_latest_preview_is_kept_and_none_once_it_ended():
    bus = EventBus()
    stream = JobStream(bus, 300)
    publish(bus, stream, "queued", "a", queue_position=0)
    publish(bus, stream, "started", "a")
    publish(bus, stream, "progress", "a", step=1, steps=3, preview=b"first")
    publish(bus, stream, "progress", "a", step=2, steps=3, preview=b"second")
    log = stream.log("a")
    assert all("preview" not in e.data for e in log.events)
    assert [log.preview_of(e) for e in log.events if e.type == "progress"] == [None, b"second"]
    assert (log.step, log.steps, log.status) == (2, 3, "running")
    publish(bus, stream, "finished", "a", images=[], timings_ms={})
    assert log.preview is None and log.status == "succeeded"


def test_a_watched_job_that_never_publishes_here_is_not_kept():
    stream = JobStream(EventBus(), 300)
    log = stream.watch("elsewhere")
    assert stream.log("elsewhere") is None and len(stream) == 1
    stream.unwatch(log)
    assert len(stream) == 0
