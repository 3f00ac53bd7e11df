"""``GET /v1/jobs/{id}/events``: a job's events as Server-Sent Events (sse-starlette), read from the
job stream (service/job_stream.py). What goes over the wire, one event each::

    event: progress
    id: 4
    data: {"step":2,"steps":4}

``id`` is the job's event sequence number (1, 2, ...): a client reconnecting with ``Last-Event-ID``
gets only the events after it, and one that had the final event already gets 204 (an EventSource
then stops reconnecting). A ``preview`` (with ``?preview=true``) follows the progress event it came
with and has its id. A job whose events are no longer kept gets one final event built from its
record (without an id). A comment (``: ping``) every 15 s keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import AsyncIterator, Callable

from fastapi import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from pixelserve.service.events import FINAL_EVENTS, JobEvent
from pixelserve.service.job_status import FINAL_EVENT, JobQueries, JobRecord, images_of

#: Seconds between keep-alive comments.
PING_SECONDS = 15
#: A stream with no event for this long reads the job's record: a job that ended where this process
#: did not see it end (another replica, an event dropped) still ends its stream.
RECORD_CHECK_SECONDS = 5.0

ImageUrl = Callable[[str], str]


def _json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))


def wire_data(event: JobEvent, image_url: ImageUrl) -> dict:
    d = event.data
    if event.type == "queued":
        return {"queue_position": d.get("queue_position")}
    if event.type == "progress":
        return {"step": d.get("step"), "steps": d.get("steps")}
    if event.type == "finished":
        return {"images": [{"url": image_url(im["key"]), "seed": im["seed"]} for im in d.get("images", ())]}
    if event.type in ("failed", "cancelled"):
        return {"error": d.get("error")}
    return {}


def to_sse(event: JobEvent, image_url: ImageUrl) -> ServerSentEvent:
    return ServerSentEvent(_json(wire_data(event, image_url)), event=event.type, id=str(event.seq))


def preview_sse(event: JobEvent, jpeg: bytes) -> ServerSentEvent:
    data = {"step": event.data.get("step"), "steps": event.data.get("steps"),
            "image": base64.b64encode(jpeg).decode("ascii")}  # a JPEG
    return ServerSentEvent(_json(data), event="preview", id=str(event.seq))


def final_of(record: JobRecord, image_url: ImageUrl) -> ServerSentEvent:
    """The final event of a job whose events are not kept, from its record."""
    if record.status == "succeeded":
        data = {"images": images_of(record, image_url)}
    else:
        data = {"error": record.error}
    return ServerSentEvent(_json(data), event=FINAL_EVENT[record.status])


def last_event_id(header: str | None) -> int:
    """The ``Last-Event-ID`` a reconnecting client sends; anything else counts as none."""
    try:
        return max(0, int((header or "").strip()))
    except ValueError:
        return 0


def events_response(jobs: JobQueries, record: JobRecord, caller_id: int | None, last_event: str | None,
                    preview: bool, image_url: ImageUrl) -> Response:
    last = last_event_id(last_event)
    log = jobs.stream.log(record.id)
    if log is not None and log.final is not None and last >= log.final.seq:
        return Response(status_code=204)
    return EventSourceResponse(_events(jobs, record, caller_id, last, preview, image_url), ping=PING_SECONDS,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(jobs: JobQueries, record: JobRecord, caller_id: int | None, last: int, preview: bool,
                  image_url: ImageUrl) -> AsyncIterator[ServerSentEvent]:
    stream = jobs.stream
    log = stream.watch(record.id)
    try:
        if record.status in FINAL_EVENT and log.status is None:  # ended, and its events are gone
            yield final_of(record, image_url)
            return
        sent = last
        while True:
            waker = log.waker  # taken before reading: an event appended after it wakes this wait
            for event in log.after(sent):
                yield to_sse(event, image_url)
                if preview and event.type == "progress" and (jpeg := log.preview_of(event)) is not None:
                    yield preview_sse(event, jpeg)
                sent = event.seq
                if event.type in FINAL_EVENTS:
                    return
            try:
                await asyncio.wait_for(waker.wait(), RECORD_CHECK_SECONDS)
            except TimeoutError:
                record = await asyncio.to_thread(jobs.find, caller_id, record.id)
                if record.status in FINAL_EVENT and log.final is None:
                    yield final_of(record, image_url)
                    return
    finally:
        stream.unwatch(log)
