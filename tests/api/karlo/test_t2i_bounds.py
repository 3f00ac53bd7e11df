"""Every t2i field's range, as the Karlo spec states it: out of range -> 400 code -2, nothing recorded."""

import pytest

from pixelserve.dialects.karlo.protocol import T2IRequest
from tests.api.karlo.helpers import job_count

BASE21 = {"version": "v2.1", "prompt": "a cat", "width": 1024, "height": 1024}
BASE20 = {"version": "v2.0", "prompt": "a cat", "width": 512, "height": 512}


def body(base=BASE21, drop=(), **fields):
    out = {k: v for k, v in base.items() if k not in drop}
    out.update(fields)
    return out


REJECTED = {
    "version missing": body(drop=("version",)),
    "version unknown": body(version="v3.0"),
    "version not a string": body(version=2.1),
    "prompt missing": body(drop=("prompt",)),
    "prompt empty": body(prompt=""),
    "prompt too long": body(prompt="a" * 2049),
    "prompt not a string": body(prompt=123),
    "negative_prompt too long": body(negative_prompt="a" * 2049),
    "width missing": body(drop=("width",)),
    "height missing": body(drop=("height",)),
    "v2.1 width below 768": body(width=760),
    "v2.1 width above 1280": body(width=1288),
    "v2.1 height below 768": body(height=760),
    "v2.1 height above 1280": body(height=1288),
    "v2.1 width not a multiple of 8": body(width=1020),
    "v2.0 width below 384": body(BASE20, width=376),
    "v2.0 height above 640": body(BASE20, height=648),
    "v2.0 width not a multiple of 8": body(BASE20, width=500),
    "v2.0 at v2.1 size": body(BASE20, width=1024, height=1024),
    "width as string": body(width="1024"),
    "width as float": body(width=1024.5),
    "upscale not a bool": body(upscale="yes"),
    "scale 3": body(scale=3),
    "scale 8": body(scale=8),
    "image_format gif": body(image_format="gif"),
    "image_quality 0": body(image_quality=0),
    "image_quality 101": body(image_quality=101),
    "samples 0": body(samples=0),
    "samples 9": body(samples=9),
    "samples as string": body(samples="2"),
    "return_type unknown": body(return_type="file"),
    "prior_num_inference_steps 9": body(prior_num_inference_steps=9),
    "prior_num_inference_steps 101": body(prior_num_inference_steps=101),
    "prior_guidance_scale 0.9": body(prior_guidance_scale=0.9),
    "prior_guidance_scale 20.1": body(prior_guidance_scale=20.1),
    "num_inference_steps 9": body(num_inference_steps=9),
    "num_inference_steps 101": body(num_inference_steps=101),
    "guidance_scale 0.9": body(guidance_scale=0.9),
    "guidance_scale 20.1": body(guidance_scale=20.1),
    "scheduler unknown": body(scheduler="euler"),
    "v2.1 scheduler ddpm (v2.0 only)": body(scheduler="decoder_ddpm_v_prediction"),
    "seed negative": body(seed=[-1]),
    "seed above 4294967295": body(seed=[4294967296]),
    "seed longer than samples": body(seed=[1, 2]),
    "seed shorter than samples": body(samples=3, seed=[1, 2]),
    "seed not a list": body(seed=5),
    "nsfw_checker not a bool": body(nsfw_checker="true"),
    "face_refiner bbox_size_threshold above 1": body(face_refiner={"bbox_size_threshold": 1.1}),
    "face_refiner bbox_filter_threshold below 0": body(face_refiner={"bbox_filter_threshold": -0.1}),
    "face_refiner restoration_repeats below 1": body(face_refiner={"restoration_repeats": 0.5}),
    "face_refiner restoration_repeats above 10": body(face_refiner={"restoration_repeats": 10.5}),
    "face_refiner weight_sft above 1": body(face_refiner={"weight_sft": 1.01}),
    "body not an object": [1, 2, 3],
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_out_of_range_is_400_code_minus_2_and_records_nothing(karlo, app_client, case):
    before = job_count(app_client)
    r = karlo(REJECTED[case])
    assert r.status_code == 400, r.text
    assert r.json()["code"] == -2
    assert isinstance(r.json()["msg"], str) and r.json()["msg"]
    assert job_count(app_client) == before


def test_message_names_the_field(karlo):
    r = karlo(body(image_quality=101))
    assert "image_quality" in r.json()["msg"]
    r = karlo(body(width=1020))
    assert "width" in r.json()["msg"]


def test_invalid_json_is_400(app_client, api_key):
    r = app_client.post("/v2/inference/karlo/t2i", content=b"{not json",
                        headers={"Authorization": f"KakaoAK {api_key}", "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"code": -2, "msg": "body is not valid JSON"}


ACCEPTED_EDGES = [
    body(width=768, height=1280), body(width=1280, height=768),
    body(BASE20, width=384, height=640, scheduler="decoder_ddpm_v_prediction"),
    body(image_quality=1), body(image_quality=100), body(samples=8, seed=[0] * 7 + [4294967295]),
    body(prior_num_inference_steps=10, prior_guidance_scale=1.0, num_inference_steps=100, guidance_scale=20.0),
    body(prior_num_inference_steps=100, prior_guidance_scale=20, num_inference_steps=10, guidance_scale=1),
    body(scale=4), body(image_format="jpeg", return_type="base64_string"), body(negative_prompt="a" * 2048),
    body(face_refiner={"bbox_size_threshold": 0, "bbox_filter_threshold": 0, "restoration_repeats": 10, "weight_sft": 1}),
]


@pytest.mark.parametrize("wire", ACCEPTED_EDGES)
def test_range_edges_are_accepted(wire):
    parsed = T2IRequest.model_validate(wire).model_dump()
    for k, v in wire.items():
        if isinstance(v, dict):
            assert {f: parsed[k][f] for f in v} == v
        else:
            assert parsed[k] == v


def test_defaults_match_the_spec():
    p = T2IRequest.model_validate(BASE21)
    assert (p.upscale, p.scale, p.image_format, p.image_quality, p.samples, p.return_type) == (
        False, 2, "webp", 70, 1, "url")
    assert (p.prior_num_inference_steps, p.prior_guidance_scale, p.num_inference_steps, p.guidance_scale) == (
        25, 5.0, 50, 5.0)
    assert (p.scheduler, p.seed, p.nsfw_checker, p.face_refiner) == (None, None, False, None)
