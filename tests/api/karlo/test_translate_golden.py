"""Golden JSON for the pure Karlo translations (wire -> GenerationRequest -> wire)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from pixelserve.dialects.karlo import translate
from pixelserve.dialects.karlo.protocol import T2IRequest
from pixelserve.errors import NotSupported
from pixelserve.service.generation import ServedImage, ServiceResult

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


@pytest.mark.parametrize("field, value", [("upscale", True), ("nsfw_checker", True), ("face_refiner", {})])
def test_unimplemented_features_raise(field, value):
    body = T2IRequest.model_validate({"version": "v2.1", "prompt": "x", "width": 768, "height": 768, field: value})
    with pytest.raises(NotSupported) as e:
        translate.t2i_to_request(body, "m")
    assert e.value.field == field
