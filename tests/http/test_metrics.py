"""GET /metrics: Prometheus text that moves with the server's work, behind its token, off when asked."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pixelserve.app import build_engine, create_app
from pixelserve.core.model_config import demo_config
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.runners.supervised import SupervisedEngine
from pixelserve.errors import EngineFailure
from pixelserve.service.metrics import Metrics
from pixelserve.settings import Settings
from tests.api.karlo.test_engine_errors import FailingEngine
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import small
from tests.conftest import make_settings, wait_ready

TOKEN = "scrape-secret"
FAIL = "fail in the engine"
GENERATE = "/generate/{engine_id}"
#: Every metric the issue names (families, as the parser names them: counters without _total).
PIXELSERVE_FAMILIES = {
    "pixelserve_requests", "pixelserve_request_seconds", "pixelserve_jobs", "pixelserve_queue_depth",
    "pixelserve_jobs_running", "pixelserve_batch_size", "pixelserve_denoise_steps", "pixelserve_stage_seconds",
    "pixelserve_model_load_seconds", "pixelserve_device_memory_bytes", "pixelserve_webhook_deliveries",
}


class FailOnPrompt:
    """The real local engine, except that a job prompted FAIL fails inside it, as a crashed pipeline would."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    async def submit(self, job_id, request, on_progress=None):
        if request.prompt == FAIL:
            raise EngineFailure("generation failed: RuntimeError: injected")
        return await self._engine.submit(job_id, request, on_progress)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("metrics"), tiny_cache, octoai_extra_sizes=EXTRA_SIZES,
                             metrics_token=TOKEN)
    app = create_app(settings, engine=FailOnPrompt(build_engine(settings)))
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            _, key = create_key(s, "metrics", app.state.auth.secret)
        yield client, {"Authorization": f"Bearer {key}"}


def scrape(client) -> tuple[dict, dict]:
    """(families by name, sample values by (sample name, sorted labels)), parsed as Prometheus would."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    return families, samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(client, name: str, at_least: float, **labels) -> dict:
    """Events reach the metrics subscriber on its own task: wait until ``name`` shows what it must."""
    deadline = time.monotonic() + 30
    while True:
        _, samples = scrape(client)
        if value(samples, name, **labels) >= at_least or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


def test_metrics_need_the_token(server):
    client, _ = server
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401  # no scheme
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and "pixelserve_requests_total" in r.text


def test_a_generation_moves_the_request_job_step_and_stage_metrics(server):
    client, auth = server
    families, before = scrape(client)
    assert PIXELSERVE_FAMILIES <= set(families)
    assert {"process_resident_memory_bytes", "python_info"} <= set(families)  # the client library's own
    r = client.post("/generate/sd", headers=auth, json=small(steps=3))
    assert r.status_code == 200, r.text
    after = scrape_until(client, "pixelserve_jobs_total", value(before, "pixelserve_jobs_total", outcome="finished") + 1,
                         outcome="finished")

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pixelserve_requests_total", dialect="octoai", route=GENERATE, status="200") == 1
    assert moved("pixelserve_request_seconds_count", dialect="octoai", route=GENERATE) == 1
    assert moved("pixelserve_jobs_total", outcome="finished") == 1
    assert moved("pixelserve_jobs_total", outcome="failed") == 0
    assert moved("pixelserve_denoise_steps_total") == 3
    assert moved("pixelserve_batch_size_count") == 1 and moved("pixelserve_batch_size_sum") == 1
    for stage in ("auth", "admit", "engine", "store", "finish"):  # Server-Timing is off: observed anyway
        assert moved("pixelserve_stage_seconds_count", stage=stage) == 1, stage
    assert "server-timing" not in r.headers
    assert value(after, "pixelserve_model_load_seconds") > 0
    assert value(after, "pixelserve_queue_depth") == 0 and value(after, "pixelserve_jobs_running") == 0
    used = value(after, "pixelserve_device_memory_bytes", device="cpu", kind="used")
    assert 0 < used < value(after, "pixelserve_device_memory_bytes", device="cpu", kind="total")


def test_a_job_that_fails_in_the_engine_counts_as_failed(server):
    client, auth = server
    _, before = scrape(client)
    r = client.post("/generate/sd", headers=auth, json=small(prompt=FAIL))
    assert r.status_code == 500
    after = scrape_until(client, "pixelserve_jobs_total", value(before, "pixelserve_jobs_total", outcome="failed") + 1,
                         outcome="failed")
    assert value(after, "pixelserve_jobs_total", outcome="failed") - value(before, "pixelserve_jobs_total",
                                                                           outcome="failed") == 1
    assert value(after, "pixelserve_jobs_total", outcome="finished") == value(before, "pixelserve_jobs_total",
                                                                              outcome="finished")
    assert (value(after, "pixelserve_requests_total", dialect="octoai", route=GENERATE, status="500")
            - value(before, "pixelserve_requests_total", dialect="octoai", route=GENERATE, status="500")) == 1


def test_unmatched_paths_share_one_route_label(server):
    client, _ = server
    _, before = scrape(client)
    for path in ("/no/such/1", "/no/such/2"):
        assert client.get(path).status_code == 404
    _, after = scrape(client)
    moved = (value(after, "pixelserve_requests_total", dialect="none", route="unmatched", status="404")
             - value(before, "pixelserve_requests_total", dialect="none", route="unmatched", status="404"))
    assert moved == 2
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_webhook_deliveries_are_counted_through_app_state(server):
    client, _ = server
    _, before = scrape(client)
    client.app.state.metrics.webhook_delivered("delivered")
    client.app.state.metrics.webhook_delivered("retrying")
    _, after = scrape(client)
    for outcome in ("delivered", "retrying"):
        assert value(after, "pixelserve_webhook_deliveries_total", outcome=outcome) - value(
            before, "pixelserve_webhook_deliveries_total", outcome=outcome) == 1


def test_metrics_off_is_404(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELSERVE_METRICS", "false")
    app = create_app(Settings(data_dir=tmp_path), engine=FailingEngine(EngineFailure("unused")))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/health/live").status_code == 200
    assert app.state.metrics is None


def test_process_engine_worker_reports_its_memory_and_process_metrics(tiny_cache):
    """The worker is another process: its device memory comes with its heartbeat, its CPU and RSS
    from /proc by its pid; both show in the API process's /metrics."""
    async def go():
        engine = SupervisedEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, lease_s=0.5)
        metrics = Metrics()
        await engine.start()
        metrics.engine_started(engine)
        try:
            await engine.wait_ready()
            deadline = time.monotonic() + 30
            while not engine.device_memory() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the next heartbeat (every 0.1 s here)
            await asyncio.sleep(0.1)  # the load timer notices ready
            return engine.device_memory(), metrics.render(None)[0].decode()
        finally:
            await metrics.close()
            await engine.stop()

    memory, text = asyncio.run(go())
    assert 0 < memory["cpu"]["used"] < memory["cpu"]["total"]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("pixelserve_device_memory_bytes", (("device", "cpu"), ("kind", "used")))] > 0
    assert samples[("pixelserve_worker_process_resident_memory_bytes", ())] > 0
    assert samples[("pixelserve_model_load_seconds", ())] > 0


def test_openmetrics_when_the_scraper_asks_for_it(server):
    client, _ = server
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                        "Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n") and "pixelserve_jobs_total" in r.text
