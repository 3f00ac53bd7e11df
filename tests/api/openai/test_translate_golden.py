"""Golden JSON for the pure OpenAI translations: the request shapes real clients send (Open WebUI's
generation body and multipart edit, the SDK's defaults) -> GenerationRequest (``describe()``) and
how the answer is made (format, size, output options, job record, tokens)."""

import io
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from PIL import Image

from pixelserve.dialects.openai import translate
from pixelserve.dialects.openai.protocol import EditForm, GenerateRequest
from pixelserve.errors import InvalidRequest

GOLDEN = Path(__file__).parent / "golden"
SDXL = translate.Target("gpt-image-1", "sdxl", "sdxl", image_prompt=True)
SDXL_NO_IP = translate.Target("gpt-image-1", "sdxl", "sdxl")


def png(size=(80, 64), colour=(40, 90, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def answer(plan: translate.Plan) -> dict:
    return {"response_format": plan.response_format, "size": plan.size, "quality": plan.quality,
            "output": asdict(plan.output), "record": plan.record, "input_tokens": plan.input_tokens}


def check(name: str, plan: translate.Plan) -> None:
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    assert plan.request.describe() == case["internal"]
    assert json.loads(json.dumps(answer(plan))) == case["answer"]


def case_wire(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())["wire"]


def test_open_webui_generation_without_response_format():
    # Open WebUI leaves response_format out for GPT image names: the answer is b64_json, as OpenAI's.
    body = GenerateRequest.model_validate(case_wire("open_webui_generation"))
    plan = translate.generation_to_request(body, SDXL, 4096 * 4096)
    check("open_webui_generation", plan)
    assert body.response_format is None and plan.response_format == "b64_json"


def test_open_webui_multipart_edit_with_image_list():
    # multipart: every field a string; image[] twice -> the first is the start, the second an image prompt.
    form = EditForm.model_validate(case_wire("open_webui_edit"))
    plan = translate.edit_to_request(form, [png(), png((64, 64), (200, 0, 0))], None, SDXL, 4096 * 4096)
    check("open_webui_edit", plan)
    assert plan.request.init_image.size == (64, 64) and len(plan.request.image_prompt.images) == 1
    with pytest.raises(InvalidRequest) as e:  # no IP-Adapter: several images are refused, not dropped
        translate.edit_to_request(form, [png(), png()], None, SDXL_NO_IP, 4096 * 4096)
    assert e.value.field == "image"


def test_small_size_on_sdxl_is_drawn_at_a_native_size_and_resized():
    # dall-e-3's 256x256 on an SDXL model: drawn at 1024x1024, answered at 256x256 (OutputOptions.size).
    body = GenerateRequest.model_validate(case_wire("sdxl_small_size"))
    plan = translate.generation_to_request(body, translate.Target("dall-e-3", "sdxl", "sdxl"), 4096 * 4096)
    check("sdxl_small_size", plan)
    demo = translate.generation_to_request(body, translate.Target("dall-e-3", "sdxl", "sdxl", demo=True), 4096 * 4096)
    assert (demo.request.width, demo.output.size) == (256, None)  # random-weight demo models: as asked
