"""The numbers ``GET /metrics`` shows (Prometheus text format), kept per app.

Each app has its own ``CollectorRegistry``: tests build many apps in one process, and the client
library's global registry would refuse a second ``pixelserve_requests_total``. The library's process,
platform and GC collectors are registered on it too.

Where each number is counted (all of it in the API process, whatever the engine):

- requests and their latency, the Server-Timing stages: the request middleware (http/metrics.py);
- jobs by outcome, denoising steps, batch sizes: this module's event subscriber (service/events.py),
  from the events every job publishes; with the process or Ray engine the progress and results
  come back to the API process and are published here, so nothing is counted in a worker;
- queue depth, running jobs, device memory: read from the engine when Prometheus scrapes;
- model load time: from the engine's start to its being ready;
- webhook deliveries: ``webhook_delivered(outcome)``, called by the webhook sender.

Nothing here can fail or slow a job: the subscriber does O(1) work per event in its own task behind
the bus's bounded queue, and the scrape-time readers only read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from prometheus_client import (CollectorRegistry, Counter, GCCollector, Gauge, Histogram, PlatformCollector,
                               ProcessCollector)
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pixelserve.service.events import FINAL_EVENTS, EventBus, JobEvent

log = logging.getLogger(__name__)

#: Seconds: a health check (ms) up to a large image on a slow CPU (minutes).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
#: Outcomes the webhook sender reports; shown at 0 before the first delivery.
WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed")
#: The Server-Timing stage that is the whole request: pixelserve_request_seconds already is that.
WHOLE_REQUEST_STAGE = "app"


class Metrics:
    def __init__(self, bus: EventBus | None = None) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.requests = Counter("pixelserve_requests", "HTTP requests answered, by dialect, route template and status.",
                                ["dialect", "route", "status"], registry=registry)
        self.request_seconds = Histogram("pixelserve_request_seconds",
                                         "Time to the answer's headers, by dialect and route template.",
                                         ["dialect", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.jobs = Counter("pixelserve_jobs", "Jobs ended, by outcome (finished, failed, cancelled).", ["outcome"],
                            registry=registry)
        self.denoise_steps = Counter("pixelserve_denoise_steps", "Denoising steps run, summed over jobs.",
                                     registry=registry)
        self.batch_size = Histogram("pixelserve_batch_size",
                                    "Size of the engine batch each finished job ran in (jobs sharing one "
                                    "pipeline call; a batch of 4 is observed once per job).",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.stage_seconds = Histogram("pixelserve_stage_seconds",
                                       "Time in each Server-Timing stage of a request (auth, admit, engine, store, "
                                       "finish).", ["stage"], buckets=LATENCY_BUCKETS, registry=registry)
        self.model_load_seconds = Gauge("pixelserve_model_load_seconds",
                                        "Seconds from the engine's start until every configured model was loaded "
                                        "(and compiled or warmed up, where configured).", registry=registry)
        self.webhook_deliveries = Counter("pixelserve_webhook_deliveries",
                                          "Webhook delivery attempts, by outcome.", ["outcome"], registry=registry)
        for outcome in FINAL_EVENTS:
            self.jobs.labels(outcome)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels(outcome)
        self._engine: Any = None
        self._steps: dict[str, int] = {}  # job id -> last step counted; dropped when the job ends
        self._load_watch: asyncio.Task | None = None
        self._worker_collector = False
        self._request_children: dict[tuple, tuple] = {}  # bounded like the labels: routes x statuses
        self._stage_children: dict[str, Any] = {}
        registry.register(_EngineCollector(lambda: self._engine))
        if bus is not None:
            registry.register(_BusCollector(bus))
            bus.subscribe("metrics", self.on_event, maxsize=10_000)  # O(1) per event: a deep queue is cheap

    # -- scraping --------------------------------------------------------------------------------
    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The body and its content type: OpenMetrics when the scraper asks for it (Prometheus does),
        else the Prometheus text format 0.0.4, as the client library's own exporters choose."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # -- the event subscriber --------------------------------------------------------------------
    def on_event(self, event: JobEvent) -> None:
        if event.type == "progress":
            step = int(event.data.get("step", 0))
            last = self._steps.get(event.job_id, 0)
            # Steps since the last event seen (events may be coalesced); a job run again from step 1
            # (its worker died) counts its new steps.
            self.denoise_steps.inc(step - last if step > last else 1)
            self._steps[event.job_id] = step
        elif event.type in FINAL_EVENTS:
            self._steps.pop(event.job_id, None)
            self.jobs.labels(event.type).inc()
            if event.type == "finished":
                size = event.data.get("timings_ms", {}).get("batch_size")
                if size is not None:  # the engine says what it ran (engine/runners/local.py)
                    self.batch_size.observe(size)

    # -- the request middleware's calls (http/metrics.py) ----------------------------------------
    def request_answered(self, dialect: str, route: str, status: int, seconds: float) -> None:
        key = (dialect, route, status)
        children = self._request_children.get(key)
        if children is None:  # labels() validates and locks: once per label set, not per request
            children = self._request_children[key] = (self.requests.labels(dialect, route, str(status)),
                                                      self.request_seconds.labels(dialect, route))
        children[0].inc()
        children[1].observe(seconds)

    def stages(self, stages: dict[str, float]) -> None:
        for name, ms in stages.items():
            if name != WHOLE_REQUEST_STAGE:
                child = self._stage_children.get(name)
                if child is None:
                    child = self._stage_children[name] = self.stage_seconds.labels(name)
                child.observe(ms / 1e3)

    # -- for the webhook sender ------------------------------------------------------------------
    def webhook_delivered(self, outcome: str) -> None:
        """One delivery attempt ended: ``delivered`` (2xx), ``retrying`` (it will be tried again) or
        ``failed`` (given up)."""
        self.webhook_deliveries.labels(outcome).inc()

    # -- the engine ------------------------------------------------------------------------------
    def engine_started(self, engine: Any) -> None:
        """Called right after ``engine.start()``: its gauges are read from now on, and the time until
        it is ready is measured."""
        self._engine = engine
        if hasattr(engine, "worker_pid") and not self._worker_collector:
            # The process engine's worker: its CPU and memory, read from /proc like our own (the pid
            # is read at each scrape: a restarted worker has a new one).
            ProcessCollector(namespace="pixelserve_worker", pid=lambda: getattr(self._engine, "worker_pid", None),
                             registry=self.registry)
            self._worker_collector = True
        self._load_watch = asyncio.get_running_loop().create_task(self._time_load(engine, time.perf_counter()),
                                                                  name="metrics-model-load")

    async def _time_load(self, engine: Any, started: float) -> None:
        try:
            wait = getattr(engine, "wait_ready", None)
            if wait is not None:
                await wait()
            while not engine.health().ready and not engine.health().loading_error:
                await asyncio.sleep(0.25)  # an engine without wait_ready, or one still waiting for room (Ray)
            if engine.health().ready:
                self.model_load_seconds.set(time.perf_counter() - started)
        except asyncio.CancelledError:
            raise
        except Exception:  # the engine reports its own loading errors; the metric stays unset
            log.debug("timing the model load failed", exc_info=True)

    async def close(self) -> None:
        if self._load_watch is not None:
            self._load_watch.cancel()
            await asyncio.gather(self._load_watch, return_exceptions=True)
            self._load_watch = None
        self._engine = None


class _EngineCollector:
    """Queue depth, running jobs and device memory, read from the engine at scrape time."""

    def __init__(self, engine: Callable[[], Any]):
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to read before the engine starts; names are checked at scrape time

    def collect(self) -> Iterable[Metric]:
        engine = self.engine()
        if engine is None:
            return
        try:
            health = engine.health()
            reader = getattr(engine, "device_memory", None)
            devices = reader() if reader is not None else {}
        except Exception:  # a scrape shows what it can; the engine's own errors are its health's business
            log.warning("reading the engine for /metrics failed", exc_info=True)
            return
        yield GaugeMetricFamily("pixelserve_queue_depth", "Jobs waiting in the engine's queue.",
                                value=health.queue_depth)
        yield GaugeMetricFamily("pixelserve_jobs_running", "Jobs the engine is running.", value=health.running)
        memory = GaugeMetricFamily("pixelserve_device_memory_bytes",
                                   "Memory of each device: used and total (CUDA: the whole device; CPU: the "
                                   "engine process's resident memory and the machine's RAM).",
                                   labels=["device", "kind"])
        for device, kinds in devices.items():
            for kind in ("used", "total"):
                if kind in kinds:
                    memory.add_metric([device, kind], kinds[kind])
        yield memory


class _BusCollector:
    """The event bus's own health: events a subscriber dropped (queue full) or failed on."""

    def __init__(self, bus: EventBus):
        self.bus = bus

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        dropped = CounterMetricFamily("pixelserve_events_dropped", "Job events a subscriber dropped (its queue "
                                      "was full).", labels=["subscriber"])
        errors = CounterMetricFamily("pixelserve_event_handler_errors", "Job events a subscriber failed on.",
                                     labels=["subscriber"])
        for name, stats in self.bus.stats().items():
            dropped.add_metric([name], stats["dropped"])
            errors.add_metric([name], stats["errors"])
        yield dropped
        yield errors
