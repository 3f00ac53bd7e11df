"""POST /sdapi/v1/txt2img and /img2img over HTTP: A1111's defaults and nulls, the infotext field,
and every refusal a clear 4xx in A1111's shape (body validation: FastAPI's 422), nothing charged."""

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.conftest import make_settings, wait_ready

SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("a1111-http"), tiny_cache))
    with TestClient(app) as c:
        wait_ready(c)
        with app.state.sessions() as s:
            _, key = create_key(s, "http", app.state.auth.secret)
        c.auth = ("user", key)
        c.key = key
        yield c


def png_b64(size=(64, 64), color=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def info(r) -> dict:
    assert r.status_code == 200, r.text
    return json.loads(r.json()["info"])


def test_nulls_mean_defaults_and_open_webui_body(client):
    nulls = {name: None for name in ("negative_prompt", "styles", "seed", "sampler_name", "scheduler", "batch_size",
                                     "n_iter", "cfg_scale", "restore_faces", "tiling", "eta", "override_settings",
                                     "alwayson_scripts", "script_args", "sampler_index", "enable_hr")}
    got = info(client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", **SMALL, **nulls}))
    assert got["sampler_name"] == "Euler" and got["cfg_scale"] == 7.0 and len(got["all_seeds"]) == 1
    # Open WebUI sends only these; A1111's defaults (50 steps) fill the rest
    got = info(client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "batch_size": 2, "width": 64,
                                                      "height": 64}))
    assert got["steps"] == 50 and len(got["all_seeds"]) == 2 and "Steps: 50, Sampler: Euler" in got["infotexts"][0]


def test_infotext_fills_what_the_request_did_not_set(client):
    text = "a dog on a hill\nNegative prompt: rain\nSteps: 3, Sampler: DPM++ 2M, CFG scale: 4.5, Seed: 42, Size: 64x64"
    got = info(client.post("/sdapi/v1/txt2img", json={"infotext": text, "steps": 2}))
    assert (got["prompt"], got["negative_prompt"], got["seed"], got["cfg_scale"]) == ("a dog on a hill", "rain", 42,
                                                                                       4.5)
    assert got["steps"] == 2 and got["sampler_name"] == "DPM++ 2M"  # steps was sent: it wins


def test_send_images_false_answers_no_images(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "send_images": False, **SMALL})
    assert r.status_code == 200 and r.json()["images"] == [] and info(r)["all_seeds"]


@pytest.mark.parametrize("path, body, field_words", [
    ("txt2img", {"alwayson_scripts": {"ControlNet": {"args": []}}}, "always on script ControlNet not found"),
    ("txt2img", {"script_name": "x/y/z plot"}, "script_name"),
    ("txt2img", {"override_settings": {"sd_hypernetwork": "x"}}, "override_settings.sd_hypernetwork"),
    ("txt2img", {"override_settings": {"return_grid": True}}, "override_settings.return_grid"),
    ("txt2img", {"override_settings": {"samples_format": "gif"}}, "override_settings.samples_format"),
    ("txt2img", {"override_settings": {"CLIP_stop_at_last_layers": 0}}, "CLIP_stop_at_last_layers"),
    ("txt2img", {"batch_size": 8, "n_iter": 3}, "n_iter"),
    ("txt2img", {"seed": 2**33}, "seed"),
    ("txt2img", {"scheduler": "beta"}, "scheduler"),
    ("txt2img", {"prompt": "a AND b"}, "AND"),
    ("txt2img", {"negative_prompt": "[a|b]"}, "alternation"),
    ("txt2img", {"negative_prompt": "[a:b:2]"}, "prompt editing"),
    ("txt2img", {"prompt": "<hypernet:x:1>"}, "only <lora:...>"),
    ("txt2img", {"prompt": "<lora:x:0.5:0.7>"}, "UNet weight"),
    ("txt2img", {"force_task_id": "task(abc)"}, "force_task_id"),
    ("txt2img", {"width": 60}, "width"),
    ("img2img", {}, "Init image not found"),
    ("img2img", {"init_images": ["not base64!"]}, "init_images.0"),
    ("img2img", {"init_images": [png_b64()], "mask": "AAAA"}, "mask"),
    ("img2img", {"init_images": [png_b64()], "resize_mode": 3}, "resize_mode"),
    ("img2img", {"init_images": [png_b64()], "inpainting_fill": 2}, "inpainting_fill"),
    ("img2img", {"init_images": [png_b64(), png_b64()]}, "init_images"),
    ("img2img", {"init_images": [png_b64()], "mask": png_b64(color=(0, 0, 0))}, "no pixel to repaint"),
    ("img2img", {"init_images": [png_b64()], "denoising_strength": 0}, "denoising_strength"),
])
def test_refusals_are_400_in_a1111_shape_and_record_no_job(client, path, body, field_words):
    before = client.get("/v1/jobs", headers={"Authorization": f"Bearer {client.key}"}).json()
    r = client.post(f"/sdapi/v1/{path}", json={"prompt": "x", **SMALL, **body})
    assert r.status_code == 400, r.text
    got = r.json()
    assert set(got) == {"error", "detail", "body", "errors"} and field_words in got["detail"]
    after = client.get("/v1/jobs", headers={"Authorization": f"Bearer {client.key}"}).json()
    assert after == before


def test_body_validation_is_fastapis_422(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": "many"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "steps"] and r.json()["detail"][0]["type"] == "int_parsing"


def test_override_settings_describing_the_server_pass_with_their_value(client):
    got = info(client.post("/sdapi/v1/txt2img", json={"prompt": "x", **SMALL, "override_settings": {
        "return_grid": False, "enable_pnginfo": True, "samples_format": "png"}}))
    assert len(got["all_seeds"]) == 1
