"""Karlo versions served by an unCLIP (Karlo architecture) model, configured from a TOML file."""

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.demo import tiny
from tests.api.karlo.images import decode, encode, mask_with_black_box, picture
from tests.conftest import make_settings, wait_ready


@pytest.fixture(scope="module")
def unclip_client(tmp_path_factory, tiny_cache):
    data = tmp_path_factory.mktemp("unclip")
    cfg = data / "models.toml"
    cfg.write_text(f"""
[models.karlo]
family = "unclip"
path = "{tiny.ensure_tiny_model('unclip', tiny_cache / 'tiny')}"
[models.sd]
family = "sd"
path = "{tiny.ensure_tiny_model('sd', tiny_cache / 'tiny')}"
[karlo]
"v2.1" = "karlo"
"v2.0" = "karlo"
inpainting = "sd"
""")
    app = create_app(make_settings(data, tiny_cache, models_config=cfg))
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            _, key = create_key(s, "u", app.state.auth.secret)
        client.headers["Authorization"] = f"KakaoAK {key}"
        yield client


def post(client, path, **body):
    r = client.post(path, json={"return_type": "base64_string", "image_format": "png", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_t2i_prior_settings_change_the_image(unclip_client):
    base = dict(version="v2.1", prompt="a cat", width=768, height=768, num_inference_steps=10, seed=[1])
    a = post(unclip_client, "/v2/inference/karlo/t2i", **base)
    b = post(unclip_client, "/v2/inference/karlo/t2i", **base)
    c = post(unclip_client, "/v2/inference/karlo/t2i", **base, prior_num_inference_steps=40)
    assert decode(a["images"][0]["image"]).size == (768, 768)
    assert a["images"][0]["image"] == b["images"][0]["image"]
    assert a["images"][0]["image"] != c["images"][0]["image"]


def test_variation_with_unclip(unclip_client):
    data = post(unclip_client, "/v2/inference/karlo/variations", version="v2.0", image=encode(picture((64, 64))),
                width=384, height=384, num_inference_steps=10, samples=2, seed=[3, 4])
    assert [decode(im["image"]).size for im in data["images"]] == [(384, 384)] * 2
    assert data["images"][0]["image"] != data["images"][1]["image"]


def test_inpainting_goes_to_the_configured_inpainting_model(unclip_client):
    data = post(unclip_client, "/v2/inference/karlo/inpainting", image=encode(picture()),
                mask=encode(mask_with_black_box()), num_inference_steps=10, seed=[1])
    assert decode(data["images"][0]["image"]).size == (96, 64)
    from pixelserve.db.crud.jobs import get_job

    with unclip_client.app.state.sessions() as s:
        assert get_job(s, data["id"]).model == "sd"
