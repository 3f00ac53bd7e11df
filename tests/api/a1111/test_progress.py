"""A1111 ``/progress`` bodies (dialects/a1111/progress.py) for each state of the caller's job."""

from __future__ import annotations

import base64
import io
import time

from PIL import Image

from pixelserve.dialects.a1111.progress import progress_body
from pixelserve.service.job_stream import JobLog


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def test_running_job_with_preview():
    log = JobLog("j", status="running", step=5, steps=20, started_at=time.time() - 2.0, preview=(3, jpeg()))
    body = progress_body(log, "mine-1", "running", 2, skip_image=False, interrupted=False)
    assert body["progress"] == 0.26  # A1111: 0.01 + step / steps
    assert 5.0 < body["eta_relative"] < 6.5  # elapsed / progress - elapsed
    assert body["state"]["job"] == "mine-1" and body["state"]["job_count"] == 2
    assert (body["state"]["sampling_step"], body["state"]["sampling_steps"]) == (5, 20)
    preview = Image.open(io.BytesIO(base64.b64decode(body["current_image"])))
    assert preview.format == "PNG" and preview.size == (8, 8)
    assert progress_body(log, "mine-1", "running", 2, skip_image=True, interrupted=False)["current_image"] is None


def test_queued_and_ended_jobs():
    queued = progress_body(JobLog("j", status="queued", queue_position=3), "q", "queued", 1, False, False)
    assert (queued["progress"], queued["eta_relative"], queued["textinfo"]) == (0.0, 0.0, "In queue: 3 ahead")
    done = progress_body(JobLog("j", status="succeeded", step=20, steps=20), "d", "succeeded", 0, False, False)
    assert done["progress"] == 1.0 and done["textinfo"] == "Succeeded" and done["current_image"] is None
    stopped = progress_body(None, "c", "cancelled", 0, False, True)
    assert stopped["progress"] == 0.0 and stopped["state"]["interrupted"] is True and stopped["textinfo"] == "Cancelled"
