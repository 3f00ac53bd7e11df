"""``refiner_checkpoint`` / ``refiner_switch_at`` on an SDXL model configured with a refiner: A1111 runs
the refiner only when the request names it (here: the configured refiner's file or folder name)."""

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.demo import tiny
from tests.conftest import make_settings, wait_ready

BODY = {"prompt": "a harbour", "seed": 4, "width": 64, "height": 64, "steps": 6, "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": "xl"}}


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_cache):
    base = tiny.ensure_tiny_model("sdxl", tiny_cache / "tiny")
    refiner = tiny.ensure_tiny_model("sdxl-refiner", tiny_cache / "tiny")
    data = tmp_path_factory.mktemp("a1111-refiner")
    config = data / "models.toml"
    config.write_text(f'[models.xl]\nfamily = "sdxl"\npath = "{base}"\nrefiner = "{refiner}"\n')
    app = create_app(make_settings(data, tiny_cache, models_config=config))
    with TestClient(app) as c:
        wait_ready(c)
        with app.state.sessions() as s:
            _, key = create_key(s, "refiner", app.state.auth.secret)
        c.auth = ("user", key)
        c.refiner_name = refiner.name
        yield c


def run(client, **fields) -> tuple[np.ndarray, dict]:
    r = client.post("/sdapi/v1/txt2img", json={**BODY, **fields})
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    return np.asarray(image.convert("RGB"), dtype=np.int16), json.loads(r.json()["info"])


def test_the_refiner_runs_only_when_named(client):
    plain, info = run(client)
    assert "Refiner" not in info["infotexts"][0]
    refined, info = run(client, refiner_checkpoint=client.refiner_name, refiner_switch_at=0.5)
    assert f"Refiner: {client.refiner_name}, Refiner switch at: 0.5" in info["infotexts"][0]
    assert not np.array_equal(plain, refined)
    again, _ = run(client)
    assert np.array_equal(plain, again)


@pytest.mark.parametrize("fields, words", [
    ({"refiner_checkpoint": "other.safetensors"}, "is not a refiner of xl"),
    ({"refiner_checkpoint": "REFINER", "refiner_switch_at": 1.5}, "refiner_switch_at"),
])
def test_refusals(client, fields, words):
    fields = {k: (client.refiner_name if v == "REFINER" else v) for k, v in fields.items()}
    r = client.post("/sdapi/v1/txt2img", json={**BODY, **fields})
    assert r.status_code == 400 and words in r.json()["detail"]
