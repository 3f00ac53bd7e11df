"""POST /v2/inference/karlo/inpainting over its full field table."""

import io

import numpy as np
import pytest
from PIL import Image

from pixelserve.dialects.karlo.protocol import InpaintingRequest
from tests.api.karlo.helpers import job_count, post_base64
from tests.api.karlo.images import decode, encode, mask_with_black_box, picture

PATH = "/v2/inference/karlo/inpainting"
BOX = (32, 16, 64, 48)
IMAGE, MASK = encode(picture()), encode(mask_with_black_box(box=BOX))


def body(**fields):
    out = {"prompt": "a red ball", "image": IMAGE, "mask": MASK, "num_inference_steps": 10}
    out.update(fields)
    return out


def b64(karlo, **fields):
    return post_base64(karlo, PATH, body(**fields))


def pixels(img):
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_pixels_outside_the_mask_are_preserved(karlo):
    data = b64(karlo, seed=[4, 5], samples=2)
    src = pixels(picture())
    outside = np.ones(src.shape[:2], bool)
    outside[BOX[1]:BOX[3] + 1, BOX[0]:BOX[2] + 1] = False
    for im in data["images"]:
        out = pixels(decode(im["image"]))
        assert out.shape == src.shape  # 96x64: already multiples of 8
        assert np.array_equal(out[outside], src[outside])  # untouched, byte for byte
        assert np.abs(out[~outside] - src[~outside]).mean() > 5  # and the black box was repainted


def test_spec_sample_body_only_image_and_mask(karlo):
    r = karlo({"image": IMAGE, "mask": MASK}, path=PATH)  # no prompt, no version: v2.0
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "v2.0"


def test_same_seed_same_image(karlo):
    assert b64(karlo, seed=[8])["images"][0]["image"] == b64(karlo, seed=[8])["images"][0]["image"]


def test_reference_image_changes_the_edit(karlo):
    plain = pixels(decode(b64(karlo, seed=[2])["images"][0]["image"]))
    ref = encode(Image.new("RGB", (50, 50), (255, 0, 0)))
    guided = pixels(decode(b64(karlo, seed=[2], reference_image=ref)["images"][0]["image"]))
    box = (slice(BOX[1] + 2, BOX[3] - 1), slice(BOX[0] + 2, BOX[2] - 1))
    assert not np.array_equal(plain[box], guided[box])


def test_heic_input_is_accepted(karlo):
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    picture().save(buf, format="HEIF")
    import base64

    data = b64(karlo, image=base64.b64encode(buf.getvalue()).decode(), seed=[1])
    assert decode(data["images"][0]["image"]).size == (96, 64)


def test_sizes_are_cut_to_multiples_of_8(karlo):
    img, mask = picture((100, 70)), mask_with_black_box((100, 70))
    data = b64(karlo, image=encode(img), mask=encode(mask), seed=[1])
    assert decode(data["images"][0]["image"]).size == (96, 64)


REJECTED = {
    "version v2.1": {"version": "v2.1"},
    "version unknown": {"version": "v3"},
    "image missing": {"image": None},
    "mask missing": {"mask": None},
    "prompt too long": {"prompt": "a" * 2049},
    "negative_prompt too long": {"negative_prompt": "a" * 2049},
    "prompt not a string": {"prompt": 5},
    "image over 1024 px": {"image": encode(picture((1032, 64))), "mask": encode(mask_with_black_box((1032, 64)))},
    "image under 64 px": {"image": encode(picture((48, 48))), "mask": encode(mask_with_black_box((48, 48), (1, 1, 9, 9)))},
    "mask size differs": {"mask": encode(mask_with_black_box((64, 64)))},
    "mask with no black": {"mask": encode(Image.new("RGB", (96, 64), "white"))},
    "mask not an image": {"mask": "aGVsbG8="},
    "reference_image not an image": {"reference_image": "aGVsbG8="},
    "image as URL": {"image": "https://mk.kakaocdn.net/dn/karlo-dev/x.png"},
    "samples 0": {"samples": 0},
    "image_quality 101": {"image_quality": 101},
    "image_format bmp": {"image_format": "bmp"},
    "return_type": {"return_type": "b64"},
    "prior_num_inference_steps 9": {"prior_num_inference_steps": 9},
    "prior_guidance_scale 21": {"prior_guidance_scale": 21},
    "num_inference_steps 9": {"num_inference_steps": 9},
    "guidance_scale 0.5": {"guidance_scale": 0.5},
    "seed length": {"seed": [1, 2]},
    "seed negative": {"seed": [-5]},
    "scale 1": {"scale": 1},
    "face_refiner restoration_repeats 11": {"face_refiner": {"restoration_repeats": 11}},
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_rejects(karlo, app_client, case):
    wire = {k: v for k, v in body(**REJECTED[case]).items() if v is not None}
    before = job_count(app_client)
    r = karlo(wire, path=PATH)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == -2 and r.json()["msg"]
    assert job_count(app_client) == before


def test_v21_message_says_v20_only(karlo):
    r = karlo(body(version="v2.1"), path=PATH)
    assert "v2.0 only" in r.json()["msg"]


def test_defaults_match_the_spec():
    p = InpaintingRequest.model_validate({"image": "x", "mask": "y"})
    assert (p.version, p.prompt, p.negative_prompt, p.reference_image) == ("v2.0", "", None, None)
    assert (p.upscale, p.scale, p.image_format, p.image_quality, p.samples, p.return_type) == (
        False, 2, "webp", 70, 1, "url")
    assert (p.prior_num_inference_steps, p.prior_guidance_scale, p.num_inference_steps, p.guidance_scale) == (
        25, 5.0, 50, 5.0)
