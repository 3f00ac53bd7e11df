"""The model-aware checks run in the API process before anything is recorded or charged, whatever
the engine: the local engine here, the worker process's (process) here, Ray's in
tests/engine/runners/test_ray_serve.py. And an API process with the process engine never loads torch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, UsageEvent
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import small
from tests.conftest import make_settings, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def assert_refused_and_nothing_written(client, app) -> None:
    """OctoAI asks for clip_skip 10 of the tiny SD model's 2-layer text encoder: a 422 naming the field,
    no job record, no quota use, no event."""
    events = []
    app.state.events.subscribe("collect", events.append)
    with app.state.sessions() as s:
        _, key = create_key(s, "checks", app.state.auth.secret)
    r = client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"}, json=small(clip_skip=10))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "clip_skip"]
    assert "must be 0 to 1 for this model" in r.json()["detail"][0]["msg"]
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 0
    assert events == []


@pytest.mark.parametrize("engine", ["local", "process"])
def test_a_request_the_model_refuses_is_refused_before_anything_is_written(engine, tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, engine=engine, octoai_extra_sizes=EXTRA_SIZES))
    with TestClient(app) as client:
        wait_ready(client)
        assert_refused_and_nothing_written(client, app)


def test_a_studio_create_the_model_refuses_moves_no_credit(tmp_path, tiny_cache):
    """Studio prices and reserves only after the checks: a refusal leaves the balances and records as
    they were."""
    from pixelserve.errors import InvalidRequest
    from tests.api.studio.conftest import SMALL_SETTINGS

    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS))
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            _, key = create_key(s, "studio", app.state.auth.secret)
        headers = {"X-Api-Key": key}
        before = client.get("/api/credits", headers=headers).json()

        def refuse(request):
            raise InvalidRequest("is 99 tokens long", field="prompt")

        app.state.engine.check = refuse
        r = client.post("/api/images/create", headers=headers,
                        json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2})
        assert r.status_code == 400 and r.json()["message"] == "prompt: is 99 tokens long", r.text
        assert client.get("/api/credits", headers=headers).json() == before
        with app.state.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 0
            assert s.scalar(select(func.count()).select_from(UsageEvent)) == 0


def api_process(tmp_path, tiny_cache, **settings) -> dict:
    """In a fresh Python process: an app on ``settings``, one generation and one refused request through
    OctoAI, then which of torch, diffusers, compel and safetensors its sys.modules holds."""
    script = textwrap.dedent(f"""
        import json, shutil, sys
        from pathlib import Path
        from fastapi.testclient import TestClient
        from pixelserve.app import create_app
        from pixelserve.db.crud.keys import create_key
        from pixelserve.settings import Settings

        data = Path({str(tmp_path)!r})
        shutil.copytree({str(tiny_cache)!r}, data / "cache")
        app = create_app(Settings(data_dir=data, octoai_extra_sizes={EXTRA_SIZES!r}, **{settings!r}))
        with TestClient(app) as client:
            while client.get("/health/ready").status_code != 200:
                pass
            with app.state.sessions() as s:
                _, key = create_key(s, "k", app.state.auth.secret)
            headers = {{"Authorization": f"Bearer {{key}}"}}
            body = {{"prompt": "a cat", "width": 64, "height": 64, "steps": 2}}
            ok = client.post("/generate/sd", headers=headers, json=body).status_code
            refused = client.post("/generate/sd", headers=headers, json={{**body, "clip_skip": 10}}).status_code
        heavy = sorted(m for m in ("torch", "diffusers", "compel", "safetensors") if m in sys.modules)
        print(json.dumps({{"ok": ok, "refused": refused, "heavy": heavy}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_api_process_with_the_process_engine_never_imports_torch(tmp_path, tiny_cache):
    assert api_process(tmp_path, tiny_cache, engine="process") == {"ok": 200, "refused": 422, "heavy": []}
