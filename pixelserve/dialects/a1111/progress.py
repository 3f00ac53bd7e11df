"""``GET /progress``, ``POST /interrupt`` and ``/skip``: the caller's own jobs, never another key's.

A1111 runs one job at a time and reports that one to everybody. Here jobs run side by side, so each
caller sees its own: the job named by ``id_task`` / ``force_task_id`` (the txt2img field, which
becomes the job's id), else its newest running one, else its oldest queued one.
``state.job_count`` counts the caller's queued and running jobs (webuiapi's ``util_wait_for_ready``
waits for 0); ``current_image`` is the job's latest live preview (PIXELSERVE_PREVIEW_EVERY) as a
PNG. ``/interrupt`` stops the caller's running jobs; ``/skip`` does too when the job makes one image
(where A1111's skip and interrupt both end it), and is a 501 for a batch: pixelserve cannot drop one
image of a batch and go on with the next.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from datetime import datetime, timezone

from PIL import Image

from pixelserve.errors import NotFound, NotSupported
from pixelserve.service.job_status import JobQueries
from pixelserve.service.job_stream import JobLog
from pixelserve.service.pipeline import Job

ENDED = ("succeeded", "failed", "cancelled")
IDLE_STATE = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": 0,
              "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}


def _png(jpeg: bytes) -> str:
    """A1111 sends its live preview as a base64 PNG; ours is a small JPEG."""
    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as im:
        im.convert("RGB").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _status(jobs: JobQueries, job: Job) -> str:
    log = jobs.stream.log(job.id)
    if log is not None and log.status is not None:
        return log.status
    return "running" if job.started else "queued"


def current(jobs: JobQueries, caller_id: int | None) -> tuple[list[Job], Job | None]:
    """The caller's live jobs and the one /progress reports."""
    live = jobs.pipeline.live_jobs(caller_id)
    running = [j for j in live if _status(jobs, j) == "running"]
    if running:
        return live, running[-1]
    return live, (live[0] if live else None)


async def named(jobs: JobQueries, caller_id: int | None, task_id: str) -> tuple[str, str] | None:
    """(server id, status) of the caller's job called ``task_id`` (its force_task_id or the server's id);
    None for a job not admitted yet (clients poll while their txt2img is on its way) or another key's."""
    try:
        record = await asyncio.to_thread(jobs.find, caller_id, task_id)
    except NotFound:
        return None
    log = jobs.stream.log(record.id)
    return record.id, (log.status if log is not None and log.status else record.status)


def _timestamp(started: float | None) -> str:
    if started is None:
        return "0"
    return datetime.fromtimestamp(started, timezone.utc).strftime("%Y%m%d%H%M%S")


def progress_body(log: JobLog | None, shown_id: str, status: str, job_count: int, skip_image: bool,
                  interrupted: bool) -> dict:
    """A1111's ProgressResponse for one job (``status`` as the jobs API names it)."""
    step = (log.step or 0) if log is not None else 0
    steps = (log.steps or 0) if log is not None else 0
    started = log.started_at if log is not None else None
    if status == "succeeded":
        progress = 1.0
    elif status == "running" and steps:
        progress = min(1.0, 0.01 + step / steps)  # A1111: 0.01 + job_no/job_count + sampling_step/steps
    else:
        progress = 0.0
    eta = 0.0
    if status == "running" and progress > 0 and started is not None:
        elapsed = max(0.0, time.time() - started)
        eta = elapsed / progress - elapsed
    textinfo = None
    if status == "queued":
        position = log.queue_position if log is not None else None
        textinfo = "Waiting..." if not position else f"In queue: {position} ahead"
    elif status in ENDED:
        textinfo = status.capitalize()
    image = None
    if not skip_image and status == "running" and log is not None and log.preview is not None:
        image = _png(log.preview[1])
    state = {**IDLE_STATE, "job": shown_id, "job_count": job_count, "job_timestamp": _timestamp(started),
             "sampling_step": step, "sampling_steps": steps, "interrupted": interrupted}
    return {"progress": progress, "eta_relative": eta, "state": state, "current_image": image,
            "textinfo": textinfo}


async def progress(jobs: JobQueries, caller_id: int | None, task_id: str | None, skip_image: bool) -> dict:
    live, job = current(jobs, caller_id)
    if task_id is not None:
        found = await named(jobs, caller_id, task_id)
        if found is None:
            return {"progress": 0.0, "eta_relative": 0.0, "state": {**IDLE_STATE, "job_count": len(live)},
                    "current_image": None, "textinfo": "Waiting..."}
        (job_id, status), shown = found, task_id
    elif job is not None:
        job_id, status, shown = job.id, _status(jobs, job), job.client_id or job.id
    else:
        return {"progress": 0.0, "eta_relative": 0.0, "state": dict(IDLE_STATE), "current_image": None,
                "textinfo": None}
    interrupted = jobs.pipeline.was_cancelled(job_id) or status == "cancelled"
    return progress_body(jobs.stream.log(job_id), shown, status, len(live), skip_image, interrupted)


async def internal_progress(jobs: JobQueries, caller_id: int | None, task_id: str, id_live_preview: int,
                            live_preview: bool) -> dict:
    """A1111's ``POST /internal/progress`` (its UI's per-task polling, with ``force_task_id``) for the
    caller's job: the live preview only when newer than ``id_live_preview``."""
    found = await named(jobs, caller_id, task_id)
    if found is None:
        return {"active": False, "queued": False, "completed": False, "progress": None, "eta": None,
                "live_preview": None, "id_live_preview": -1, "textinfo": "Waiting..."}
    job_id, status = found
    log = jobs.stream.log(job_id)
    body = progress_body(log, task_id, status, 0, skip_image=True, interrupted=False)
    preview_id, preview = (log.preview if log is not None and log.preview is not None else (id_live_preview, None))
    image = None
    if live_preview and preview is not None and status == "running" and preview_id != id_live_preview:
        image = "data:image/png;base64," + _png(preview)
    return {"active": status == "running", "queued": status == "queued", "completed": status in ENDED,
            "progress": body["progress"] if status != "queued" else None,
            "eta": body["eta_relative"] if status == "running" else None, "live_preview": image,
            "id_live_preview": preview_id if image is not None else id_live_preview,
            "textinfo": body["textinfo"] or ("In progress..." if status == "running" else None)}


def interrupt(jobs: JobQueries, caller_id: int | None) -> int:
    """Stops the caller's running jobs; returns how many."""
    live, _ = current(jobs, caller_id)
    running = [j for j in live if _status(jobs, j) == "running"]
    for job in running:
        jobs.pipeline.cancel(job.id)
    return len(running)


def skip(jobs: JobQueries, caller_id: int | None) -> None:
    live, job = current(jobs, caller_id)
    if job is None or _status(jobs, job) != "running":
        return  # nothing running: A1111 sets its flag and nothing happens
    if job.request.num_images > 1:
        raise NotSupported("skip: pixelserve cannot skip one image of a batch and go on; "
                           "POST /sdapi/v1/interrupt stops the whole job")
    jobs.pipeline.cancel(job.id)
