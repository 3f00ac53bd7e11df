"""Golden JSON for the pure Karlo translations (wire -> GenerationRequest -> wire)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from pixelserve.dialects.karlo import translate
from pixelserve.dialects.karlo.protocol import T2IRequest
from pixelserve.service.pipeline import ServedImage, ServiceResult

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["t2i_minimal", "t2i_full"])
def test_wire_to_request(name):
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    body = T2IRequest.model_validate(case["wire"])
    assert translate.t2i_to_request(body, case["model"]).describe() == case["internal"]
    assert asdict(translate.output_options(body)) == case["output"]


def test_result_to_wire():
    case = json.loads((GOLDEN / "t2i_response.json").read_text())
    body = T2IRequest.model_validate(case["wire_request"])
    res = case["result"]
    result = ServiceResult(
        job_id=res["job_id"], model=res["model"], timings_ms={},
        images=[ServedImage(i["id"], i["seed"], b"", "image/webp", i["storage_key"]) for i in res["images"]],
    )
    wire = translate.result_to_wire(body, result, lambda im: f"https://img/{im.storage_key}")
    assert wire == case["wire"]


def test_post_processing_options():
    body = T2IRequest.model_validate({"version": "v2.1", "prompt": "x", "width": 768, "height": 768, "upscale": True,
                                      "scale": 4, "nsfw_checker": True,
                                      "face_refiner": {"restoration_repeats": 3.4, "weight_sft": 0.9}})
    post = translate.t2i_to_request(body, "m").post
    assert (post.upscale, post.max_side, post.nsfw_check) == (4, 2048, True)
    assert (post.face_refine.restoration_repeats, post.face_refine.weight_sft) == (3, 0.9)
    assert (post.face_refine.bbox_size_threshold, post.face_refine.bbox_filter_threshold) == (1, 1)
    plain = translate.t2i_to_request(T2IRequest.model_validate(
        {"version": "v2.1", "prompt": "x", "width": 768, "height": 768, "scale": 4}), "m").post
    assert (plain.upscale, plain.nsfw_check, plain.face_refine) == (None, False, None)


def test_variations_and_inpainting_to_request():
    from pixelserve.dialects.karlo.protocol import InpaintingRequest, VariationsRequest
    from tests.api.karlo.images import encode, mask_with_black_box, picture

    case = json.loads((GOLDEN / "variations_inpainting.json").read_text())
    var = VariationsRequest.model_validate({**case["variations_wire"], "image": encode(picture((80, 40)))})
    sd = translate.variations_to_request(var, "sd15", "sd", 10**7)
    assert sd.describe() == case["variations_sd"]
    assert sd.init_image.size == (384, 448)
    unclip = translate.variations_to_request(var, "karlo", "unclip", 10**7)
    assert unclip.describe() == case["variations_unclip"]
    assert unclip.init_image.size == (80, 80)  # resized to 1:1, as the spec says

    inp = InpaintingRequest.model_validate({**case["inpainting_wire"], "image": encode(picture((100, 70))),
                                            "mask": encode(mask_with_black_box((100, 70)))})
    req = translate.inpainting_to_request(inp, "sd15", 10**7)
    assert req.describe() == case["inpainting"]
    assert req.mask_image.getpixel((40, 20)) == 255 and req.mask_image.getpixel((5, 5)) == 0  # black -> repaint
