"""``create_app(settings)``: builds engine, database and storage in the lifespan; mounts routers."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pixelserve.core.timing import ServerTimingMiddleware
from pixelserve.core.validate import Limits
from pixelserve.db.session import close_database, open_database
from pixelserve.dialects.a1111 import router as a1111
from pixelserve.dialects.karlo import router as karlo
from pixelserve.dialects.octoai import router as octoai
from pixelserve.dialects.openai import router as openai
from pixelserve.dialects.studio import router as studio
from pixelserve.engine.weights import gc_freeze
from pixelserve.engine.client import EngineClient
from pixelserve.http import health, images, jobs, metrics, ui
from pixelserve.http import webhooks as webhook_routes
from pixelserve.service.assets import AssetService
from pixelserve.service.auth import Authenticator
from pixelserve.service.events import EventBus, log_finished
from pixelserve.service.job_status import JobQueries
from pixelserve.service.job_stream import JobStream
from pixelserve.service.auth_limits import AuthLimiter
from pixelserve.service.pipeline import Pipeline
from pixelserve.service.studio import open_studio
from pixelserve.service.webhook_sender import WebhookSender
from pixelserve.service.webhooks import Outbox, wake_on_final
from pixelserve.settings import Settings
from pixelserve.storage.base import ImageStore
from pixelserve.storage.local import LocalImageStore
from pixelserve.storage.signing import UrlSigner

log = logging.getLogger("pixelserve")


def build_engine(settings: Settings) -> EngineClient:
    options = dict(devices=settings.devices, max_queue=settings.max_queue, max_batch_size=settings.max_batch_size,
                   max_batch_delay_ms=settings.max_batch_delay_ms,
                   max_batch_wait_ms=settings.max_batch_wait_ms, start_deadline_s=settings.start_deadline_seconds,
                   deadline_s=settings.request_deadline_seconds, **settings.pipeline_options())
    if settings.engine == "ray":
        from pixelserve import ray_app

        return ray_app.build_engine(settings)
    if settings.engine == "process":
        from pixelserve.engine.runners.supervised import SupervisedEngine

        return SupervisedEngine(settings.models.models, settings.cache_dir, lease_s=settings.worker_lease_seconds,
                                **options)
    from pixelserve.engine.runners.local import LocalEngine

    return LocalEngine(settings.models.models, settings.cache_dir, **options)


def build_store(settings: Settings) -> ImageStore:
    if settings.store == "s3":
        from pixelserve.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    return LocalImageStore(settings.image_dir)


def client_lines(app: FastAPI) -> list[str]:
    """One line per dialect: where its clients point and how they send the key (``serve`` sets the
    URL it listens on and, under ``make run``, the demo key it created)."""
    base = getattr(app.state, "listen_url", None)
    if base is None:
        return []
    key = getattr(app.state, "demo_key", None) or "$KEY (pixelserve keys create --name NAME)"
    return [hint.format(base=base, key=key) for hint in app.state.client_hints]


def warn_if_demo(settings: Settings) -> None:
    demo = [m.id for m in settings.models.models.values() if m.is_demo]
    if demo:
        banner = "!" * 78
        log.warning("%s", banner)
        log.warning("DEMO MODELS: %s are tiny random-weight models: they draw NOISE.", ", ".join(demo))
        log.warning("Set PIXELSERVE_MODELS_CONFIG to a TOML file naming your own checkpoints.")
        log.warning("%s", banner)


def drain_left(app: FastAPI, settings: Settings) -> float:
    """Seconds left of the SIGTERM drain (``cli serve`` sets ``drain_started``); 0 outside a drain."""
    started = getattr(app.state, "drain_started", None)
    if started is None:
        return 0.0
    return max(0.0, started + settings.drain_timeout_seconds - time.monotonic())


def create_app(settings: Settings | None = None, engine: EngineClient | None = None) -> FastAPI:
    settings = settings or Settings()
    models = settings.models  # a bad model config fails here, at start, not on the first request
    # Every job publishes here (service/events.py); cross-cutting features attach as subscribers.
    bus = EventBus()
    bus.subscribe("log", log_finished)  # one log line per ended job
    bus.subscribe("webhooks", wake_on_final(lambda: app.state.webhook_sender.wake()))  # send at once
    job_stream = JobStream(bus, settings.job_events_keep_seconds).attach()  # the jobs API's progress and SSE

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sessions = open_database(settings.db_url)
        eng = engine or build_engine(settings)
        store = build_store(settings)
        signer = UrlSigner(settings.signing_secret(), settings.url_ttl_seconds)
        app.state.settings = settings
        app.state.engine = eng
        app.state.store = store
        app.state.signer = signer
        app.state.sessions = sessions
        app.state.max_body_bytes = settings.max_body_bytes
        app.state.body_read_timeout = settings.body_read_timeout_seconds
        app.state.auth = Authenticator(sessions, enabled=settings.auth_enabled, secret=settings.api_key_hmac_secret())
        if settings.auth_enabled and settings.auth_fail_burst:
            app.state.auth_limits = AuthLimiter(app.state.auth, settings.auth_fail_burst,
                                                settings.auth_fail_per_minute, settings.trusted_networks,
                                                delay_s=settings.auth_fail_delay_seconds)
        # Webhooks: written with each job's end (outbox), sent by a task of their own (sender).
        outbox = Outbox(sessions, store, signer, allow_private=settings.webhook_allow_private,
                        base_url=lambda: settings.public_base_url or getattr(app.state, "listen_url", None),
                        keyless_secret=settings.webhook_keyless_secret)
        app.state.webhooks = outbox
        app.state.webhook_sender = WebhookSender(
            sessions, outbox.secret, outbox.policy,
            on_outcome=app.state.metrics.webhook_delivered if app.state.metrics is not None else None)
        app.state.service = Pipeline(eng, sessions, store, signer, Limits(max_pixels=settings.max_image_pixels),
                                     settings.quota_limits(), bus, outbox=outbox)
        app.state.assets = AssetService(sessions, settings.asset_dir, models, settings.cache_dir,
                                        max_bytes=settings.asset_max_bytes, store=store,
                                        # octo: OctoAI's parsed config (octoai.mount, below, before any start)
                                        configured=octo.public_assets(models), family_models=octo.family_models())
        app.state.assets.sync_config()  # the configured public assets (octoai:canny_sdxl ...)
        warn_if_demo(settings)
        for line in client_lines(app):
            log.warning("%s", line)
        if not settings.auth_enabled:
            log.warning("AUTH IS DISABLED (PIXELSERVE_AUTH_ENABLED=false): anyone can generate.")
        app.state.studio, app.state.studio_jobs = open_studio(settings, app.state.service, sessions, store,
                                                             app.state.assets)
        app.state.jobs = JobQueries(sessions, job_stream, app.state.service, app.state.studio_jobs)
        await bus.start()
        await app.state.webhook_sender.start()  # takes up the deliveries a stopped server left
        await eng.start()
        if app.state.metrics is not None:
            app.state.metrics.engine_started(eng)  # queue, memory and load-time gauges read it from now on
        await app.state.studio_jobs.start()  # resumes the Studio jobs a stopped server left
        # engine/weights/gc_freeze.py: a local engine freezes the whole process once its models are ready;
        # with the pipelines in other processes (process, ray), the API process freezes its own start-up
        # state, so the collector's full passes do not walk it again and again.
        frozen = settings.gc_freeze and settings.engine != "local"
        if frozen:
            gc_freeze.freeze()
        try:
            yield
        finally:
            if frozen:
                gc_freeze.unfreeze()
            await app.state.studio_jobs.stop(grace_s=drain_left(app, settings))  # the rest resume at the next start
            if app.state.metrics is not None:
                await app.state.metrics.close()
            await eng.stop()
            app.state.service.close()
            await bus.stop()
            await app.state.webhook_sender.stop()
            await close_database(sessions)  # every connection closed: SQLite checkpoints its WAL into the file

    app = FastAPI(title="pixelserve", version="0.1.0", lifespan=lifespan,
                  description="Self-hosted image generation speaking the Karlo, OctoAI, Studio and OpenAI Images APIs.")
    app.state.events = bus
    app.state.job_stream = job_stream
    app.state.client_hints = []  # each dialect's mount adds how its clients point at it
    if settings.server_timing:
        app.add_middleware(ServerTimingMiddleware)
    # GET /metrics, a middleware counting answers, a bus subscriber counting jobs (None when off);
    # the webhook sender reports deliveries through app.state.metrics.webhook_delivered(outcome).
    app.state.metrics = metrics.install(app, settings, bus)
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(webhook_routes.router)
    app.include_router(jobs.router)
    ui.mount(app)  # the playground at /, the status page, and their line in the start-up hints
    # Each dialect: its routes, and its table of the models TOML parsed (a bad one fails here, at start).
    karlo.mount(app, models)
    studio.mount(app, models)
    octo = octoai.mount(app, models)  # its public ControlNets and checkpoints go to the asset library
    openai.mount(app, models)
    a1111.mount(app, models)
    return app
