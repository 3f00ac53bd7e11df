"""What Studio adds to the pipeline's stages (service/pipeline.py): credits, image records, its own
stored format, and jobs that outlive the request (async, resumed after a restart).

- admit: the credits reserved and the job's PENDING image records written, in the admission
  transaction;
- submit: a generation, or an upscale's post-processing passes;
- store: WebP under ``studio/<owner>/<job>/<record>.webp``; an image over the NSFW threshold is blurred;
- settle: records COMPLETED, images that did not come back FAILED and refunded; on failure every
  image FAILED and refunded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter
from sqlalchemy.orm import Session

from pixelserve.core.images import encode_image
from pixelserve.core.request import GenerationRequest, GenerationResult, PostProcess
from pixelserve.db.crud import studio as crud
from pixelserve.engine.client import EngineClient
from pixelserve.service.credits import CreditService
from pixelserve.service.pipeline import Job, ServedImage
from pixelserve.storage.base import ImageStore

MIME = "image/webp"
#: scaleSize -> the engine's passes (it upscales by 2 or 4; 8x is 4x then 2x; 1x is a copy).
SCALE_PASSES = {"1x": (), "2x": (2,), "4x": (4,), "8x": (4, 2)}


@dataclass
class Admitted:
    image_ids: list[int]
    balances: Any  # credits.Balances right after the reservation


class StudioPolicy:
    def __init__(self, credits: CreditService, *, owner_id: int, kind: str, plan: dict, cost_per_image: int,
                 records: list[dict], nsfw_threshold: float, max_pixels: int, stopping=lambda: False,
                 resumable: bool = True):
        self.credits = credits
        self.owner_id = owner_id
        self.kind = kind  # create | upscale
        self.plan = plan
        self.cost_per_image = cost_per_image
        self.records = records  # the image records to write at admission
        self.nsfw_threshold = nsfw_threshold
        self.max_pixels = max_pixels
        self.stopping = stopping
        self.resumable = resumable

    # -- admit -----------------------------------------------------------------------------------
    def admit(self, session: Session, job: Job) -> Admitted:
        balances = self.credits.reserve(session, self.owner_id, job.id, self.cost_per_image * len(self.records))
        rows = crud.add_job(session, job.id, self.owner_id, self.kind, self.plan, self.cost_per_image, self.records)
        session.flush()
        return Admitted([r.id for r in rows], balances)

    # -- submit ----------------------------------------------------------------------------------
    async def submit(self, engine: EngineClient, job: Job, on_progress) -> GenerationResult:
        if self.kind != "upscale":
            return await engine.submit(job.id, job.request, on_progress)
        image = Image.open(io.BytesIO(job.extra["parent"])).convert("RGB")
        max_side = math.isqrt(self.max_pixels)
        for i, factor in enumerate(SCALE_PASSES[self.plan["scale"]]):
            req = job.request.with_(width=image.width, height=image.height,
                                    post=PostProcess(upscale=factor, max_side=max_side))
            image = (await engine.postprocess(f"{job.id}-{i}", req, image)).images[0]
        return GenerationResult(images=[image], seeds=list(job.request.seeds or (0,)), model=job.request.model)

    # -- store -----------------------------------------------------------------------------------
    def store(self, store: ImageStore, job: Job, result: GenerationResult) -> list[ServedImage]:
        out = []
        scores = result.nsfw_scores or [None] * len(result.images)
        for record, image, seed, score in zip(job.extra["records"], result.images, result.seeds, scores):
            if score is not None and score >= self.nsfw_threshold:
                image = image.filter(ImageFilter.GaussianBlur(radius=max(8, max(image.size) / 10)))  # unrecognisable
            key = f"studio/{self.owner_id}/{job.id}/{record.id}.webp"
            store.put(key, encode_image(image, "webp", 90), MIME)
            out.append(ServedImage(str(record.id), seed, None, MIME, key, score, f"{image.width}x{image.height}"))
        return out

    # -- settle ----------------------------------------------------------------------------------
    def settle(self, session: Session, job: Job, images: list[ServedImage]) -> None:
        """Records COMPLETED and the reservation settled, in the pipeline's final transaction."""
        studio_job = crud.finish_job(session, job.id, None)
        done = {int(im.id): im for im in images}
        failed = 0
        for record in crud.job_images(session, job.id):
            im = done.get(record.id)
            if im is None:
                record.status, record.error, failed = "FAILED", "no image came back", failed + 1
                continue
            record.status, record.storage_key, record.resolution = "COMPLETED", im.storage_key, im.resolution
            record.blur_reason = (f"nsfw (score {im.nsfw_score:.2f})"
                                  if im.nsfw_score is not None and im.nsfw_score >= self.nsfw_threshold else None)
        self.credits.settle(session, job.id, failed * studio_job.cost_per_image)

    def fail(self, session: Session, job: Job, error: str) -> None:
        """Records FAILED and every image refunded."""
        studio_job = crud.finish_job(session, job.id, error)
        records = crud.job_images(session, job.id)
        for record in records:
            record.status, record.error = "FAILED", error
        self.credits.settle(session, job.id, len(records) * studio_job.cost_per_image)

    def record_cancel(self, job: Job) -> bool:
        """Cancelled while the server stops, a resumable (background) job stays IN_PROGRESS for the next
        start or another replica; otherwise (a client that hung up, a request cut off by the drain) it
        is failed and refunded."""
        return not (self.resumable and self.stopping())


def request_of_plan(plan: dict, reference: Image.Image | None) -> GenerationRequest:
    """The request a stored plan describes; ``reference`` (already fitted to the output size) is the
    image prompt when the plan has an image-prompt scale, else the img2img start."""
    described = plan["request"]
    if reference is None:
        return GenerationRequest.from_description(described)
    if described.get("image_prompt_scale") is not None:
        return GenerationRequest.from_description(described, image_prompt=(reference,))
    return GenerationRequest.from_description(described, init_image=reference)
