"""``stream: true``: the answer as Server-Sent Events, the way OpenAI streams images.

``<kind>.partial_image`` events (kind ``image_generation`` or ``image_edit``) carry the job's live
previews as they are made (engine/post/previews.py: a JPEG of at most 256 px a side every
``PIXELSERVE_PREVIEW_EVERY`` steps), at most ``partial_images`` of them, ``partial_image_index``
from 0; fewer come when the job has fewer previews (OpenAI's own answer may also have fewer). Then
one ``<kind>.completed`` event per image, with the image as asked (``output_format``) and ``usage``.
An error before the job is admitted (a bad field, the quota) is the usual JSON error; one after it
is an event whose data has ``error``, which the SDK raises as ``APIError``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import Request
from sse_starlette import EventSourceResponse

from pixelserve.dialects.openai import translate
from pixelserve.dialects.openai.route import OpenAIRoute
from pixelserve.errors import PixelserveError, status_of
from pixelserve.service.pipeline import Pipeline

#: How often the wait for the job's admission looks again (only until its first event).
ADMIT_POLL_S = 0.02


def _error_data(exc: BaseException) -> dict:
    err = exc if isinstance(exc, PixelserveError) else PixelserveError(f"generation failed ({type(exc).__name__})")
    return {"type": "error", **json.loads(OpenAIRoute.render(err, status_of(err)).body)}


async def stream_answer(request: Request, service: Pipeline, key: Any, plan: translate.Plan, kind: str,
                        nsfw_threshold: float) -> EventSourceResponse:
    job_id = str(uuid.uuid4())
    jobs = request.app.state.job_stream
    log = jobs.watch(job_id)  # before the job exists, so that no event of it is missed
    work = asyncio.ensure_future(service.generate(plan.request, dialect="openai", key=key, output=plan.output,
                                                  record=plan.record, job_id=job_id))
    try:
        while log.status is None and not work.done():  # admitted (its first event) or refused
            await asyncio.wait({work}, timeout=ADMIT_POLL_S)
        if work.done() and work.exception() is not None:
            raise work.exception()  # nothing was admitted: the usual JSON error
    except BaseException:
        jobs.unwatch(log)
        if not work.done():
            work.cancel()
        raise
    created = int(time.time())
    common = {"background": "opaque", "created_at": created, "size": plan.size}
    if plan.quality is not None:
        common["quality"] = plan.quality

    async def events() -> AsyncIterator[dict]:
        sent, index = 0, 0  # the seq of the progress event whose preview went out last
        try:
            while True:
                waker = log.waker  # taken before reading: a later event wakes the wait below
                if log.preview is not None and log.preview[0] > sent and index < plan.partial_images:
                    sent = log.preview[0]
                    yield _event(f"{kind}.partial_image", {
                        **common, "b64_json": base64.b64encode(log.preview[1]).decode("ascii"),
                        "output_format": "jpeg", "partial_image_index": index})
                    index += 1
                if work.done():
                    break
                woken = asyncio.ensure_future(waker.wait())
                await asyncio.wait({work, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
            try:
                result = work.result()
                translate.check_moderation(result, nsfw_threshold)
            except Exception as exc:
                yield _event("error", _error_data(exc))
                return
            usage = translate.result_to_wire(plan, result, lambda im: {}, created)["usage"]
            for im in result.images:
                yield _event(f"{kind}.completed", {**common, "b64_json": base64.b64encode(im.data).decode("ascii"),
                                                   "output_format": plan.output.format, "usage": usage})
        finally:
            jobs.unwatch(log)
            if not work.done():  # the client went away: the job stops (nothing charged)
                work.cancel()

    return EventSourceResponse(events(), headers={"x-request-id": job_id}, ping=15)


def _event(kind: str, data: dict) -> dict:
    return {"event": kind, "data": json.dumps({"type": kind, **data}, separators=(",", ":"))}

