"""deploy/ is documentation, but it must stay true to the code: the Serve config validates against
Ray Serve's own schema and names applications and deployments the way the engine looks them up,
and the compose file wires the API to the settings pixelserve reads; the Prometheus config scrapes
/metrics and the Grafana dashboard reads only metrics the server exposes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from pixelserve.errors import EngineFailure
from pixelserve.settings import Settings
from tests.api.karlo.test_engine_errors import FailingEngine

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_serve_config_matches_the_engine(monkeypatch, tmp_path):
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is not installed")
    config = schema.ServeDeploySchema.model_validate(yaml.safe_load((DEPLOY / "serve.yaml").read_text()))
    from pixelserve import ray_app

    for app in config.applications:
        module, _, attr = app.import_path.partition(":")
        assert module == "pixelserve.ray_app" and callable(getattr(ray_app, attr))
        group = app.args["group"]
        assert app.name == f"{Settings().ray_app_prefix}-{group}"  # what RayEngine.app_name(group) finds
        assert [d.name for d in app.deployments] == [f"engine-{group}"]
        for key, value in app.runtime_env["env_vars"].items():  # read as the replicas' builder reads them
            if key != "PIXELSERVE_MODELS_CONFIG":  # names weights that are not on this machine
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
        assert group in Settings().ray_model_groups


def test_compose_settings_are_pixelserve_settings(monkeypatch, tmp_path):
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"api", "postgres", "seaweedfs", "ray-head"} <= set(compose["services"])
    env = compose["services"]["api"]["environment"]
    fields = set(Settings.model_fields) | {"db_url"}
    unknown = [k for k in env if k.removeprefix("PIXELSERVE_").lower() not in fields]
    assert unknown == []
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.engine == "ray" and settings.store == "s3" and settings.db_url.startswith("postgresql+psycopg://")
    assert "--engine ray" in compose["services"]["api"]["command"]


class _StubEngine(FailingEngine):
    """No models to load; a worker pid (ours) so that the process engine's worker metrics appear too."""

    worker_pid = os.getpid()

    def device_memory(self):
        return {"cuda:0": {"used": 1, "total": 2}}


def exposed_sample_names(tmp_path) -> set[str]:
    """Every sample name /metrics can show (a labelled family with no children yet shows only its
    HELP/TYPE lines: its names come from its type)."""
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from pixelserve.app import create_app

    with TestClient(create_app(Settings(data_dir=tmp_path), engine=_StubEngine(EngineFailure("unused")))) as client:
        text = client.get("/metrics").text
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}
    return {f.name + s for f in text_string_to_metric_families(text) for s in suffixes.get(f.type, ("",))}


def test_prometheus_config_scrapes_metrics():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "pixelserve"]
    assert job["metrics_path"] == "/metrics"
    [sd] = job["dns_sd_configs"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert sd["names"] == ["api"] and "api" in compose["services"] and sd["port"] == 8000


def test_dashboard_reads_only_metrics_the_server_exposes(tmp_path):
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    used = {m for e in exprs for m in re.findall(r"\b(?:pixelserve|process|python)_[a-z0-9_]+\b", e)}
    assert used - exposed_sample_names(tmp_path) == set()
    issue17 = {"requests_total", "request_seconds_bucket", "jobs_total", "queue_depth", "jobs_running",
               "batch_size_bucket", "denoise_steps_total", "stage_seconds_bucket", "model_load_seconds",
               "device_memory_bytes", "webhook_deliveries_total"}
    assert {f"pixelserve_{m}" for m in issue17} <= used  # a panel for each
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
