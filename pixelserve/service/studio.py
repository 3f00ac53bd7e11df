"""Studio: image records, durable jobs, reference images, upscales, bookmarks, styles, collections.

The flow of every create/upscale: validate (``check``) -> reserve credits + write the job and its
PENDING image records in ONE transaction -> run (now, or by the JobRunner) -> store the images ->
settle (refunding failed images) + write the final records in ONE transaction.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import re
import secrets
import socket
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from PIL import Image, ImageFilter, ImageOps
from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core.images import encode_image, open_image_bytes
from pixelserve.core.request import GenerationRequest, ImagePromptRef, LoraRef, PostProcess
from pixelserve.db.crud import quotas
from pixelserve.db.crud import studio as crud
from pixelserve.db.crud.credits import Balances
from pixelserve.db.models_studio import StudioImage
from pixelserve.engine.client import EngineClient, ModelInfo
from pixelserve.errors import InvalidRequest, NotFound, NotSupported, PixelserveError, QuotaExceeded
from pixelserve.service.credits import CreditService
from pixelserve.service.jobs import JobRunner
from pixelserve.storage.base import ImageStore

log = logging.getLogger(__name__)

#: "<ownerId>/<file>": digits, one slash, a plain file name (no leading dot, so no ".." or hidden
#: files; no "%", NUL or backslash, so no encoded traversal either).
REFERENCE_PATH = r"^[0-9]{1,12}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,150}$"
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
#: scaleSize -> the engine's passes (it upscales by 2 or 4; 8x is 4x then 2x; 1x is a copy).
SCALE_PASSES = {"1x": (), "2x": (2,), "4x": (4,), "8x": (4, 2)}
MIME = "image/webp"
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


class StudioService:
    def __init__(self, engine: EngineClient, sessions: sessionmaker[Session], store: ImageStore,
                 credits: CreditService, check: Callable[[GenerationRequest], GenerationRequest], *,
                 model_id: str | None = None, nsfw_check: bool = True, nsfw_threshold: float = 0.5,
                 max_pixels: int = 4096 * 4096, quota: quotas.QuotaLimits = quotas.QuotaLimits(),
                 worker_id: str | None = None, lease_seconds: float = crud.DEFAULT_LEASE_SECONDS):
        self.engine = engine
        self.sessions = sessions
        self.store = store
        self.credits = credits
        self.check = check  # GenerationService.check: validation before anything is written
        self.model_id = model_id
        self.nsfw_check = nsfw_check
        self.nsfw_threshold = nsfw_threshold
        self.max_pixels = max_pixels
        self.quota = quota
        self.stopping = lambda: False  # set by the app: True while shutting down
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
    async def create(self, owner_id: int, key_id: int | None, request: GenerationRequest, info: RecordInfo, *,
                     reference_key: str | None, cost_per_image: int) -> tuple[str, list[int], Balances]:
        """Validate, then reserve the credits and write the job and its PENDING records together."""
        request = self.check(request.with_(post=PostProcess(nsfw_check=self.nsfw_check)))
        plan = {"request": _plan(request), "reference_key": reference_key}
        images = [dict(index=i, seed=seed, resolution=f"{request.width}x{request.height}", mime_type=MIME,
                       platform=info.platform, api_type=info.api_type, ratio=info.ratio, prompts=info.prompts,
                       group_id=info.group_id, variation_id=i) for i, seed in enumerate(request.seeds)]
        return await asyncio.to_thread(self._open_job, owner_id, key_id, "create", plan, cost_per_image, images)

    def _open_job(self, owner_id: int, key_id: int | None, kind: str, plan: dict, cost: int,
                  images: list[dict]) -> tuple[str, list[int], Balances]:
        """The job id, its image ids and the balances right after the reservation."""
        job_id = str(uuid.uuid4())
        with self.sessions() as s:
            if key_id is not None:
                exhausted = quotas.consume(s, key_id, job_id, self.quota)
                if exhausted:
                    raise QuotaExceeded(f"quota per {exhausted} exceeded for this key",
                                        retry_after=quotas.seconds_until_next(exhausted))
        try:
            with self.sessions() as s:
                balances = self.credits.reserve(s, owner_id, job_id, cost * len(images))
                rows = crud.add_job(s, job_id, owner_id, kind, plan, cost, images)
                ids = [r.id for r in rows]
                s.commit()
        except Exception:
            with self.sessions() as s:
                quotas.release(s, job_id)
            raise
        return job_id, ids, balances

    # -- running a job (here, or in the background by service/jobs.JobRunner) ----------------------
    async def run_job(self, job_id: str, *, resumable: bool = True) -> None:
        """Run a job (claiming it first). Cancelled while the server stops, a ``resumable``
        (background) job stays IN_PROGRESS for the next start or another replica; otherwise (a client
        that hung up, a request cut off by the shutdown drain) it is failed and refunded."""
        job = await asyncio.to_thread(self._db, crud.claim, job_id, self.worker_id, self.lease_seconds)
        if job is None:
            return  # already run (or running) elsewhere
        await self._run(job, resumable)

    async def run_next(self) -> bool:
        """Claim and run the oldest job no replica runs (one queued elsewhere, or whose replica died)."""
        job = await asyncio.to_thread(self._db, crud.claim_next, self.worker_id, self.lease_seconds)
        if job is None:
            return False
        await self._run(job)
        return True

    def renew_leases(self) -> int:
        """Called every few seconds by the JobRunner: this replica still runs these jobs."""
        return self._db(crud.renew_leases, self.worker_id, list(self.running), self.lease_seconds)

    async def _run(self, job, resumable: bool = True) -> None:
        job_id = job.id
        self.running.add(job_id)
        try:
            if job.attempts > MAX_ATTEMPTS:  # it took down (or outlived) its replica every time: give up
                await asyncio.to_thread(self._fail, job_id, f"gave up after {MAX_ATTEMPTS} attempts")
                return
            if job.kind == "upscale":
                images, scores = await self._run_upscale(job), None
            else:
                result = await self.engine.submit(job_id, await asyncio.to_thread(self._request_of, job.plan))
                images, scores = result.images, result.nsfw_scores
            stored = await asyncio.to_thread(self._store_images, job, images, scores)
        except asyncio.CancelledError:
            if not (resumable and self.stopping()):
                await asyncio.shield(asyncio.to_thread(self._fail, job_id, "cancelled"))
            raise
        except PixelserveError as e:
            await asyncio.to_thread(self._fail, job_id, str(e))
            raise
        except Exception as e:
            await asyncio.to_thread(self._fail, job_id, f"{type(e).__name__}: {e}")
            raise
        else:
            await asyncio.to_thread(self._complete, job_id, stored)
        finally:
            self.running.discard(job_id)
            # Not finished (shutdown, or recording the result failed): the lease ends now, so the
            # next start or another replica takes the job over instead of waiting for it to lapse.
            await asyncio.shield(asyncio.to_thread(self._db, crud.release_lease, job_id, self.worker_id))

    def _request_of(self, plan: dict) -> GenerationRequest:
        p = dict(plan["request"])
        nsfw = p.pop("nsfw_check")
        p["loras"] = tuple(LoraRef(**x) for x in p.pop("loras", ()))
        scale = p.pop("image_prompt_scale", None)
        reference = {}
        if plan.get("reference_key"):
            raw = self.store.get(plan["reference_key"])
            image = open_image_bytes(raw, field="image", max_bytes=UPLOAD_MAX_BYTES, max_pixels=self.max_pixels)
            image = fit(image, p["width"], p["height"])
            reference = ({"init_image": image} if scale is None
                         else {"image_prompt": ImagePromptRef(images=(image,), scale=scale)})
        return GenerationRequest(**{**p, "seeds": tuple(p["seeds"])}, **reference, post=PostProcess(nsfw_check=nsfw))

    async def _run_upscale(self, job) -> list[Image.Image]:
        plan = job.plan
        image = Image.open(io.BytesIO(await asyncio.to_thread(self.store.get, plan["parent_key"]))).convert("RGB")
        max_side = math.isqrt(self.max_pixels)
        for i, factor in enumerate(SCALE_PASSES[plan["scale"]]):
            req = GenerationRequest(model=plan["model"], prompt=plan["prompt"], task="post", width=image.width,
                                    height=image.height, seeds=(plan["seed"],), steps=plan["steps"],
                                    post=PostProcess(upscale=factor, max_side=max_side))
            image = (await self.engine.postprocess(f"{job.id}-{i}", req, image)).images[0]
        return [image]

    def _store_images(self, job, images: list, scores: list[float] | None) -> list[dict]:
        out = []
        with self.sessions() as s:
            records = crud.job_images(s, job.id)
        for record, image, score in zip(records, images, scores or [None] * len(images)):
            blur = None
            if score is not None and score >= self.nsfw_threshold:
                image = image.filter(ImageFilter.GaussianBlur(radius=max(8, max(image.size) / 10)))  # unrecognisable
                blur = f"nsfw (score {score:.2f})"
            key = f"studio/{job.owner_id}/{job.id}/{record.id}.webp"
            self.store.put(key, encode_image(image, "webp", 90), MIME)
            out.append(dict(id=record.id, storage_key=key, blur_reason=blur, resolution=f"{image.width}x{image.height}"))
        return out

    def _complete(self, job_id: str, stored: list[dict]) -> None:
        """Records COMPLETED and the reservation settled, in one transaction."""
        with self.sessions() as s:
            job = crud.finish_job(s, job_id, None)
            done = {d["id"]: d for d in stored}
            failed = 0
            for record in crud.job_images(s, job_id):
                if record.id in done:
                    d = done[record.id]
                    record.status, record.storage_key = "COMPLETED", d["storage_key"]
                    record.blur_reason, record.resolution = d["blur_reason"], d["resolution"]
                else:
                    record.status, record.error, failed = "FAILED", "no image came back", failed + 1
            self.credits.settle(s, job_id, failed * job.cost_per_image)
            s.commit()

    def _fail(self, job_id: str, error: str) -> None:
        """Records FAILED and every image refunded, in one transaction."""
        with self.sessions() as s:
            job = crud.finish_job(s, job_id, error)
            records = crud.job_images(s, job_id)
            for record in records:
                record.status, record.error = "FAILED", error
            self.credits.settle(s, job_id, len(records) * job.cost_per_image)
            s.commit()
            quotas.release(s, job_id)

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

    async def upscale(self, owner_id: int, key_id: int | None, image_id: int, scale: str,
                      cost: int) -> tuple[str, list[int], Balances]:
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
        return await asyncio.to_thread(self._open_job, owner_id, key_id, "upscale", plan, cost, [record])

    # -- styles and collections -------------------------------------------------------------------
    def styles(self, owner_id: int) -> list:
        return self._db(crud.list_styles, owner_id)

    def style(self, owner_id: int, style_id: int, field_name: str = "styleId"):
        row = self._db(crud.get_style, owner_id, style_id)
        if row is None:
            raise NotFound(f"no style {style_id}", field=field_name)
        return row

    def save_style(self, owner_id: int, values: dict, style_id: int | None = None):
        row = self._db(crud.save_style, owner_id, values, style_id)
        if row is None:
            raise NotFound(f"no style {style_id} of yours (built-in styles are read-only)")
        return row

    def delete_style(self, owner_id: int, style_id: int) -> None:
        if not self._db(crud.delete_style, owner_id, style_id):
            raise NotFound(f"no style {style_id} of yours (built-in styles are read-only)")

    def collections(self, owner_id: int) -> list:
        return self._db(crud.list_collections, owner_id)

    def collection(self, owner_id: int, collection_id: int, field_name: str = "collectionId"):
        row = self._db(crud.get_collection, owner_id, collection_id)
        if row is None:
            raise NotFound(f"no collection {collection_id}", field=field_name)
        return row

    def save_collection(self, owner_id: int, values: dict, collection_id: int | None = None):
        if values.get("style_id") is not None:
            self.style(owner_id, values["style_id"])
        for i, path in enumerate(values.get("images", ())):
            self._reference_key(owner_id, path, f"images.{i}")
            self.load_reference(owner_id, path, f"images.{i}")  # exists and is a readable image
        row = self._db(crud.save_collection, owner_id, values, collection_id)
        if row is None:
            raise NotFound(f"no collection {collection_id}")
        return row

    def delete_collection(self, owner_id: int, collection_id: int) -> None:
        if not self._db(crud.delete_collection, owner_id, collection_id):
            raise NotFound(f"no collection {collection_id}")

    def balances(self, owner_id: int) -> Balances:
        return self.credits.balances(owner_id)

    def _db(self, fn, *args: Any):
        with self.sessions() as session:
            return fn(session, *args)


def open_studio(settings, engine: EngineClient, sessions: sessionmaker[Session], store: ImageStore,
                check: Callable[[GenerationRequest], GenerationRequest]) -> tuple[StudioService, JobRunner]:
    """The Studio service and its background job runner, from settings (called in the app's lifespan)."""
    studio = StudioService(engine, sessions, store, CreditService.from_settings(sessions, settings), check,
                           model_id=settings.studio_model, nsfw_check=settings.studio_nsfw_check,
                           nsfw_threshold=settings.nsfw_threshold, max_pixels=settings.max_image_pixels,
                           quota=settings.quota_limits(), lease_seconds=settings.job_lease_seconds)
    if settings.studio_translation_model is not None:
        from pixelserve.engine.text.prompt_translation import Translator

        studio.translator = Translator(settings.studio_translation_model)
    runner = JobRunner(studio.run_job, lambda: studio._db(crud.requeue_interrupted),
                       workers=settings.studio_job_workers, is_ready=lambda: engine.health().ready,
                       run_next=studio.run_next, heartbeat=studio.renew_leases,
                       sweep_seconds=settings.job_lease_seconds / 4, capacity=settings.max_queue)
    studio.stopping = lambda: runner.stopping
    return studio, runner


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """A reference image cropped to the output's aspect ratio (centred) and resized to it."""
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _plan(request: GenerationRequest) -> dict:
    """The JSON that rebuilds ``request`` after a restart (the reference image is reloaded by key)."""
    keep = ("model", "task", "prompt", "negative_prompt", "width", "height", "num_images", "steps",
            "guidance_scale", "scheduler", "strength")
    out = {k: getattr(request, k) for k in keep}
    out["seeds"] = list(request.seeds)
    out["nsfw_check"] = asdict(request.post)["nsfw_check"]
    out["loras"] = [asdict(x) for x in request.loras]  # a style's LoRA, already resolved to its file
    # The reference image (reloaded by key) is an image prompt of this scale, or else the img2img start.
    out["image_prompt_scale"] = request.image_prompt.scale if request.image_prompt is not None else None
    return out
