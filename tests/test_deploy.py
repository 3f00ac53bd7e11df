"""deploy/ is documentation, but it must stay true to the code: the Serve config validates against
Ray Serve's own schema and names applications and deployments the way the engine looks them up,
and the compose file wires the API to the settings pixelserve reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pixelserve.settings import Settings

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
