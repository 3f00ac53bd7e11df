"""POST /v2/inference/karlo/variations over its full field table."""

import os

import numpy as np
import pytest
from PIL import Image

from pixelserve.dialects.karlo.protocol import VariationsRequest
from tests.api.karlo.helpers import job_count, post_base64
from tests.api.karlo.images import decode, encode, picture

PATH = "/v2/inference/karlo/variations"
IMAGE = encode(picture((64, 64)))


def body(**fields):
    out = {"version": "v2.0", "image": IMAGE, "width": 384, "height": 384, "num_inference_steps": 10}
    out.update(fields)
    return out


def b64(karlo, **fields):
    return post_base64(karlo, PATH, body(**fields))


def test_variation_returns_images_of_the_requested_size(karlo):
    data = b64(karlo, samples=2, seed=[1, 2], width=392, height=400)
    assert data["model_version"] == "v2.0"
    assert [im["seed"] for im in data["images"]] == [1, 2]
    assert all(decode(im["image"]).size == (392, 400) for im in data["images"])
    assert all(im["nsfw_content_detected"] is None and im["nsfw_score"] is None for im in data["images"])


def test_same_seed_same_variation_and_it_follows_the_input(karlo):
    a, b = b64(karlo, seed=[5]), b64(karlo, seed=[5])
    assert a["images"][0]["image"] == b["images"][0]["image"]
    other_input = b64(karlo, seed=[5], image=encode(picture((64, 64)).rotate(90)))
    assert other_input["images"][0]["image"] != a["images"][0]["image"]


def test_non_square_input_is_accepted_and_resized(karlo):
    data = b64(karlo, image=encode(picture((120, 40))), seed=[3])
    assert decode(data["images"][0]["image"]).size == (384, 384)


def test_url_return_by_default(karlo, app_client):
    url = karlo(body(), path=PATH).json()["images"][0]["image"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    got = app_client.get(path)
    assert got.status_code == 200 and got.headers["content-type"] == "image/webp"


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_input_formats(karlo, fmt):
    data = b64(karlo, image=encode(picture((64, 64)), fmt), seed=[1])
    assert len(data["images"]) == 1


REJECTED = {
    "version missing": {"version": None},
    "image missing": {"image": None},
    "width missing": {"width": None},
    "v2.0 width 376": {"width": 376},
    "v2.0 height 648": {"height": 648},
    "v2.1 width 1024 ok but height 700": {"version": "v2.1", "width": 1024, "height": 700},
    "not a multiple of 8": {"width": 500},
    "image not base64": {"image": "%%%"},
    "image not an image": {"image": "aGVsbG8gd29ybGQ="},
    "image gif": {"image": encode(picture((64, 64)), "GIF")},
    "image over 2048 px": {"image": encode(picture((2056, 8)))},
    "image over 2 MB": {"image": encode(Image.frombytes("RGB", (1000, 1000), os.urandom(3_000_000)))},
    "samples 9": {"samples": 9},
    "image_quality 0": {"image_quality": 0},
    "image_format tiff": {"image_format": "tiff"},
    "return_type file": {"return_type": "file"},
    "num_inference_steps 101": {"num_inference_steps": 101},
    "guidance_scale 20.5": {"guidance_scale": 20.5},
    "scheduler for v2.1 only ddim": {"version": "v2.1", "width": 768, "height": 768,
                                     "scheduler": "decoder_ddpm_v_prediction"},
    "seed length": {"samples": 2, "seed": [1]},
    "seed range": {"seed": [2**32]},
    "scale 3": {"scale": 3},
    "face_refiner weight_sft 2": {"face_refiner": {"weight_sft": 2}},
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_rejects(karlo, app_client, case):
    wire = body(**REJECTED[case])
    wire = {k: v for k, v in wire.items() if v is not None}
    before = job_count(app_client)
    r = karlo(wire, path=PATH)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == -2
    assert job_count(app_client) == before


def test_defaults_match_the_spec():
    p = VariationsRequest.model_validate({"version": "v2.1", "image": "x", "width": 1024, "height": 1024})
    assert (p.upscale, p.scale, p.image_format, p.image_quality, p.samples, p.return_type) == (
        False, 2, "webp", 70, 1, "url")
    assert (p.num_inference_steps, p.guidance_scale, p.scheduler, p.seed, p.nsfw_checker) == (50, 5.0, None, None, False)


def test_variation_differs_from_the_input(karlo):
    data = b64(karlo, seed=[9])
    out = np.asarray(decode(data["images"][0]["image"]).convert("RGB"), dtype=np.int16)
    src = np.asarray(picture((64, 64)).resize((384, 384)), dtype=np.int16)
    assert np.abs(out - src).mean() > 1


def test_the_demo_draws_variations_with_its_unclip_model(karlo, app_client):
    """Karlo is an unCLIP model (#16): the demo's variations decode the input's image embedding with
    tiny-unclip; asked to repaint faces (which unCLIP cannot), the version's model draws it (img2img)."""
    from pixelserve.db.models import Job

    plain = karlo(body(return_type="base64_string", seed=[2]), path=PATH)
    faces = karlo(body(return_type="base64_string", seed=[2], face_refiner={"restoration_repeats": 1}), path=PATH)
    assert plain.status_code == 200 and faces.status_code == 200, (plain.text, faces.text)
    with app_client.app.state.sessions() as s:
        models = [s.get(Job, r.headers["X-Job-Id"]).model for r in (plain, faces)]
    assert models == ["tiny-unclip", "tiny-sd"]
