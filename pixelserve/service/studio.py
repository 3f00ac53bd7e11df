"""Studio: image records, durable jobs, reference images, upscales, bookmarks, styles, collections.

The flow of every create/upscale: validate (``check``) -> reserve credits + write the job and its
PENDING image records in ONE transaction -> run (now, or by the JobRunner) -> store the images ->
settle (refunding failed images) + write the final records in ONE transaction.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core.images import encode_image, fit, open_image_bytes
from pixelserve.core.request import GenerationRequest, LoraRef, PostProcess
from pixelserve.db.crud import studio as crud
from pixelserve.db.crud.credits import Balances
from pixelserve.db.models_studio import StudioImage
from pixelserve.engine.client import ModelInfo
from pixelserve.errors import InvalidRequest, NotFound, NotSupported
from pixelserve.service.assets import AssetService
from pixelserve.service.asset_refs import scope_of
from pixelserve.service.credits import CreditService
from pixelserve.service.jobs import JobRunner
from pixelserve.service.pipeline import Job, Pipeline
from pixelserve.service.studio_library import StudioLibrary
from pixelserve.service.studio_policy import MIME, StudioPolicy, request_of_plan
from pixelserve.storage.base import ImageStore

log = logging.getLogger(__name__)

#: "<ownerId>/<file>": digits, one slash, a plain file name (no leading dot, so no ".." or hidden
#: files; no "%", NUL or backslash, so no encoded traversal either).
REFERENCE_PATH = r"^[0-9]{1,12}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,150}$"
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
#: Runs of one job before it is failed and refunded (each replica that took it died or stopped).
MAX_ATTEMPTS = 3


def default_worker_id() -> str:
    """This API process, as named on the jobs it holds: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class RecordInfo:
    """What an image record keeps besides the picture (headers, ratio, every prompt field)."""

    platform: str
    api_type: str | None
    ratio: str
    group_id: str | None
    prompts: dict = field(default_factory=dict)


@dataclass
class ImageView:
    record: StudioImage
    bookmarks: list
    upscaled: list[StudioImage]
    data: bytes | None  # the stored image, for base64; None until COMPLETED


@dataclass
class CreateInputs:
    model: ModelInfo
    style: Any | None  # the style row
    reference_key: str | None
    reference: Image.Image | None
    translated: str | None
    style_lora: LoraRef | None


class StudioService(StudioLibrary):
    """Studio's records, styles, collections and uploads; its jobs go through the service pipeline with a
    StudioPolicy (service/studio_policy.py)."""

    def __init__(self, pipeline: Pipeline, sessions: sessionmaker[Session], store: ImageStore,
                 credits: CreditService, assets: AssetService, *, model_id: str | None = None,
                 nsfw_check: bool = True, nsfw_threshold: float = 0.5, max_pixels: int = 4096 * 4096,
                 worker_id: str | None = None, lease_seconds: float = crud.DEFAULT_LEASE_SECONDS):
        self.pipeline = pipeline
        self.engine = pipeline.engine
        self.sessions = sessions
        self.store = store
        self.credits = credits
        self.assets = assets
        self.model_id = model_id
        self.nsfw_check = nsfw_check
        self.nsfw_threshold = nsfw_threshold
        self.max_pixels = max_pixels
        self.stopping = lambda: False  # set by open_studio: True while shutting down
        self.runner: JobRunner | None = None  # set by open_studio
        # Leases (db/crud/studio.py): several API replicas may share the database.
        self.worker_id = worker_id or default_worker_id()
        self.lease_seconds = lease_seconds
        self.running: set[str] = set()
        self.translator = None  # engine.text.prompt_translation.Translator when a translation model is configured

    def translate(self, text: str) -> str | None:
        """English for a Korean prompt; None without a translation model (or when it gives nothing)."""
        if self.translator is None:
            return None
        return self.translator.translate(text) or None

    # -- model and reference images -----------------------------------------------------------
    def model(self) -> ModelInfo:
        models = self.engine.models()
        if self.model_id:
            for m in models:
                if m.id == self.model_id:
                    return m
            raise NotSupported(f"studio_model {self.model_id!r} is not served here")
        sd = [m for m in models if m.family == "sd"]
        if not (sd or models):
            raise NotSupported("no model is served here")
        return (sd or models)[0]

    def _reference_key(self, owner_id: int, path: str, field_name: str) -> str:
        if not isinstance(path, str) or not re.fullmatch(REFERENCE_PATH, path):
            raise InvalidRequest("must be a stored image path '<ownerId>/<file>' (see POST /api/images/upload)",
                                 field=field_name)
        owner, name = path.split("/")
        if int(owner) != owner_id:  # another owner's file does not exist for the caller
            raise NotFound(f"no such image {path!r}", field=field_name)
        key = f"uploads/{owner_id}/{name}"
        root = getattr(self.store, "root", None)
        if root is not None:  # local disk: the resolved file (symlinks followed) stays in the owner's area
            area = (root / "uploads" / str(owner_id)).resolve()
            if not (root / key).resolve().is_relative_to(area):
                raise NotFound(f"no such image {path!r}", field=field_name)
        return key

    def load_reference(self, owner_id: int, path: str, field_name: str = "image") -> tuple[str, Image.Image]:
        """The store key and decoded image of a caller's reference path; 400/404 otherwise."""
        key = self._reference_key(owner_id, path, field_name)
        try:
            raw = self.store.get(key)
        except NotFound:
            raise NotFound(f"no such image {path!r}", field=field_name) from None
        return key, open_image_bytes(raw, field=field_name, max_bytes=UPLOAD_MAX_BYTES, max_pixels=self.max_pixels)

    def upload(self, owner_id: int, raw: bytes) -> str:
        """Decode (pixel limits first), re-encode as PNG, store; returns the reference path."""
        image = open_image_bytes(raw, field="file", max_bytes=UPLOAD_MAX_BYTES, max_pixels=self.max_pixels)
        name = f"reference-{secrets.token_hex(8)}.png"
        self.store.put(f"uploads/{owner_id}/{name}", encode_image(image, "png"), "image/png")
        return f"{owner_id}/{name}"

    # -- create ---------------------------------------------------------------------------------
    async def inputs(self, owner_id: int, caller, *, style_id: int | None, collection_id: int | None,
                     image: str | None, prompt_to_translate: str | None, lora_field: str) -> CreateInputs:
        """What a create request names, looked up for its caller: the model, the style (its own or the
        collection's), the reference image (``image``, else the collection's first), the translated
        prompt and the style's LoRA from the asset library."""
        model = self.model()
        style = reference = reference_key = None
        if style_id is not None:
            style = self.style(owner_id, style_id)
        if collection_id is not None:
            collection = self.collection(owner_id, collection_id)
            if collection.style_id is not None:
                style = self.style(owner_id, collection.style_id, "collectionId")
            if collection.images:  # the collection's first reference image guides every sample
                reference_key, reference = await asyncio.to_thread(
                    self.load_reference, owner_id, collection.images[0], "collectionId")
        if image is not None:
            reference_key, reference = await asyncio.to_thread(self.load_reference, owner_id, image)
        translated = None
        if prompt_to_translate is not None:
            translated = await asyncio.to_thread(self.translate, prompt_to_translate)
        style_lora = None
        if style is not None and style.lora:
            style_lora = self._style_lora(caller, style.lora, model.family, lora_field)
        return CreateInputs(model, style, reference_key, reference, translated, style_lora)

    def _style_lora(self, caller, lora: dict, family: str, field_name: str) -> LoraRef:
        """A style's LoRA from the asset library: the caller's own asset of that name, else the public
        one. Unknown or not ready: 404; not a LoRA for this model's family: 400."""
        name, weight = lora["name"], lora.get("weight", 1.0)
        common = dict(name=name, kind="lora", family=family, field=field_name, shown=name)
        try:
            found = self.assets.resolve(scope_of(caller), public=False, **common)
        except NotFound:
            found = self.assets.resolve(scope_of(caller), public=True, **common)
        return LoraRef(name=name, path=found.path, weight=weight)

    async def create(self, owner_id: int, caller_id: int | None, request: GenerationRequest, info: RecordInfo, *,
                     reference_key: str | None, ratio: str, wait: bool) -> Job:
        """Validate, then reserve the credits and write the job and its PENDING records together; a job
        nobody waits for goes to the background runner (its backlog is bounded: 503 before any charge),
        with its records as accepted in ``job.extra["accepted"]``."""
        valid = self.pipeline.validate(request.with_(post=PostProcess(nsfw_check=self.nsfw_check)))
        request = valid.request
        cost = self.credits.cost_per_image(valid.model.family, ratio)
        if not wait and self.runner is not None:
            self.runner.check_capacity()
        plan = {"request": request.describe(), "reference_key": reference_key}
        records = [dict(index=i, seed=seed, resolution=f"{request.width}x{request.height}", mime_type=MIME,
                        platform=info.platform, api_type=info.api_type, ratio=info.ratio, prompts=info.prompts,
                        group_id=info.group_id, variation_id=i) for i, seed in enumerate(request.seeds)]
        job = await self.pipeline.admit(valid, dialect="studio", caller_id=caller_id,
                                        policy=self._policy(owner_id, "create", plan, cost, records))
        if not wait and self.runner is not None:
            # The answer shows the records as accepted (PENDING): read before the runner can take the job.
            job.extra["accepted"] = await asyncio.to_thread(self.views, job.admitted.image_ids, with_data=False)
            self.runner.enqueue(job.id)
        return job

    def _policy(self, owner_id: int, kind: str, plan: dict, cost: int, records: list[dict] = (),
                resumable: bool = True) -> StudioPolicy:
        return StudioPolicy(self.credits, owner_id=owner_id, kind=kind, plan=plan, cost_per_image=cost,
                            records=list(records), nsfw_threshold=self.nsfw_threshold, max_pixels=self.max_pixels,
                            stopping=self.stopping, resumable=resumable)

    # -- running a job (here, or in the background by service/jobs.JobRunner) ----------------------
    async def run_job(self, job_id: str, *, resumable: bool = True) -> None:
        """Run a job (claiming it first). Cancelled while the server stops, a ``resumable``
        (background) job stays IN_PROGRESS for the next start or another replica; otherwise (a client
        that hung up, a request cut off by the shutdown drain) it is failed and refunded."""
        claimed = await asyncio.to_thread(self._db, crud.claim, job_id, self.worker_id, self.lease_seconds)
        if claimed is None:
            return  # already run (or running) elsewhere
        await self._run(claimed, resumable)

    async def run_next(self) -> bool:
        """Claim and run the oldest job no replica runs (one queued elsewhere, or whose replica died)."""
        claimed = await asyncio.to_thread(self._db, crud.claim_next, self.worker_id, self.lease_seconds)
        if claimed is None:
            return False
        await self._run(claimed)
        return True

    def renew_leases(self) -> int:
        """Called every few seconds by the JobRunner: this replica still runs these jobs."""
        return self._db(crud.renew_leases, self.worker_id, list(self.running), self.lease_seconds)

    async def _run(self, claimed, resumable: bool = True) -> None:
        """The pipeline's submit -> store -> settle -> record stages for a claimed Studio job."""
        job_id = claimed.id
        self.running.add(job_id)
        policy = self._policy(claimed.owner_id, claimed.kind, claimed.plan, claimed.cost_per_image,
                              resumable=resumable)
        try:
            request, extra = await asyncio.to_thread(self._job_inputs, claimed)
            job = Job(job_id, request, "studio", claimed.owner_id or None, policy, extra=extra)
            if claimed.attempts > MAX_ATTEMPTS:  # it took down (or outlived) its replica every time: give up
                await self.pipeline.fail(job, f"gave up after {MAX_ATTEMPTS} attempts")
                return
            await self.pipeline.execute(job)
        finally:
            self.running.discard(job_id)
            # Not finished (shutdown, or recording the result failed): the lease ends now, so the
            # next start or another replica takes the job over instead of waiting for it to lapse.
            await asyncio.shield(self.pipeline.record(crud.release_lease, job_id, self.worker_id))

    def _job_inputs(self, claimed) -> tuple[GenerationRequest, dict]:
        """The request a stored plan describes, with its images read back from the store."""
        plan = claimed.plan
        with self.sessions() as s:
            records = crud.job_images(s, claimed.id)
        if claimed.kind == "upscale":
            w, h = (int(v) for v in records[0].resolution.split("x")) if records else (64, 64)
            request = GenerationRequest(model=plan["model"], prompt=plan["prompt"], task="post", width=w, height=h,
                                        seeds=(plan["seed"],), steps=plan["steps"])
            return request, {"records": records, "parent": self.store.get(plan["parent_key"])}
        reference = None
        if plan.get("reference_key"):
            raw = self.store.get(plan["reference_key"])
            image = open_image_bytes(raw, field="image", max_bytes=UPLOAD_MAX_BYTES, max_pixels=self.max_pixels)
            described = plan["request"]
            reference = fit(image, described["width"], described["height"])
        return request_of_plan(plan, reference), {"records": records}

    # -- records --------------------------------------------------------------------------------
    def views(self, image_ids: list[int], *, with_data: bool = True) -> list[ImageView]:
        with self.sessions() as s:
            records = crud.images_by_ids(s, image_ids)
            ids = [r.id for r in records]
            marks, ups = crud.bookmarks_of(s, ids), crud.upscales_of(s, ids)
        out = []
        for r in records:
            data = None
            if with_data and r.status == "COMPLETED" and r.storage_key:
                try:
                    data = self.store.get(r.storage_key)
                except NotFound:
                    log.warning("image %s: stored file %s is missing", r.id, r.storage_key)
            out.append(ImageView(r, marks[r.id], ups[r.id], data))
        return out

    def owned_image(self, owner_id: int, image_id: int) -> StudioImage:
        with self.sessions() as s:
            record = crud.get_image(s, image_id)
        if record is None or record.owner_id != owner_id:
            raise NotFound(f"no image {image_id}")
        return record

    def group(self, owner_id: int, group_id: str) -> list[int]:
        with self.sessions() as s:
            return [r.id for r in crud.list_group(s, owner_id, group_id)]

    def bookmark(self, owner_id: int, image_id: int, on: bool) -> None:
        self.owned_image(owner_id, image_id)
        self._db(crud.set_bookmark, image_id, owner_id, on)

    async def upscale(self, owner_id: int, caller_id: int | None, image_id: int, scale: str) -> Job:
        """Admits an upscale of a completed generated image (charged by factor); run it with run_job."""
        parent = self.owned_image(owner_id, image_id)
        if parent.status != "COMPLETED" or parent.parent_id is not None:
            raise InvalidRequest(f"image {image_id} is {parent.status.lower()}; only a completed generated "
                                 "image can be upscaled", field="imageId")
        job_plan = self._db(crud.get_job, parent.job_id).plan.get("request", {})
        plan = {"parent_key": parent.storage_key, "scale": scale, "model": job_plan.get("model"),
                "prompt": parent.prompts.get("super") or "", "seed": parent.seed or 0,
                "steps": job_plan.get("steps", 30)}
        w, h = (int(v) for v in parent.resolution.split("x"))
        factor = int(scale.removesuffix("x"))
        side = math.isqrt(self.max_pixels)
        if max(w, h) * factor > side:
            raise InvalidRequest(f"{parent.resolution} at {scale} is over the {side} px side limit", field="scaleSize")
        record = dict(index=0, seed=parent.seed, resolution=f"{w * factor}x{h * factor}", mime_type=MIME,
                      platform=parent.platform, api_type=parent.api_type, ratio=parent.ratio, prompts=parent.prompts,
                      group_id=parent.group_id, variation_id=parent.variation_id, parent_id=parent.id,
                      scale_size=scale)
        request = GenerationRequest(model=plan["model"], prompt=plan["prompt"], task="post", width=w, height=h,
                                    seeds=(plan["seed"],), steps=plan["steps"])
        valid = self.pipeline.validate(request)
        return await self.pipeline.admit(valid, dialect="studio", caller_id=caller_id, policy=self._policy(
            owner_id, "upscale", plan, self.credits.cost_of_upscale(scale), [record]))

    def balances(self, owner_id: int) -> Balances:
        return self.credits.balances(owner_id)

    def _db(self, fn, *args: Any):
        with self.sessions() as session:
            return fn(session, *args)


def open_studio(settings, pipeline: Pipeline, sessions: sessionmaker[Session], store: ImageStore,
                assets: AssetService) -> tuple[StudioService, JobRunner]:
    """The Studio service and its background job runner, from settings (called in the app's lifespan)."""
    studio = StudioService(pipeline, sessions, store, CreditService.from_settings(sessions, settings), assets,
                           model_id=settings.studio_model, nsfw_check=settings.studio_nsfw_check,
                           nsfw_threshold=settings.nsfw_threshold, max_pixels=settings.max_image_pixels,
                           lease_seconds=settings.job_lease_seconds)
    if settings.studio_translation_model is not None:
        from pixelserve.engine.text.prompt_translation import Translator

        studio.translator = Translator(settings.studio_translation_model)
    engine = pipeline.engine
    runner = JobRunner(studio.run_job, lambda: studio._db(crud.requeue_interrupted),
                       workers=settings.studio_job_workers, is_ready=lambda: engine.health().ready,
                       run_next=studio.run_next, heartbeat=studio.renew_leases,
                       sweep_seconds=settings.job_lease_seconds / 4, capacity=settings.max_queue)
    studio.stopping = lambda: runner.stopping
    studio.runner = runner
    return studio, runner


