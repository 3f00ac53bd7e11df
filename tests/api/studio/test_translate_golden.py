"""Golden JSON for the pure Studio translations (wire -> GenerationRequest, record -> wire)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from pixelserve.db.crud.credits import Balances
from pixelserve.db.models_studio import StudioImage
from pixelserve.core.request import LoraRef
from pixelserve.dialects.studio import translate
from pixelserve.dialects.studio.protocol import CreateRequest
from pixelserve.errors import NotSupported
from pixelserve.service.studio import ImageView

GOLDEN = Path(__file__).parent / "golden"
DEFAULTS = translate.Defaults(steps=30, guidance_scale=7.0, reference_strength=0.75)


def load(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["create_reference", "create_style"])
def test_wire_to_request(name):
    case = load(name)
    body = CreateRequest.model_validate(case["wire"])
    style = translate.StyleSpec(**case["style"]) if case.get("style") else None
    reference = Image.new("RGB", (96, 64), (200, 30, 30)) if body.image else None
    gen = translate.create_to_request(body, model_id=case["model"], family=case["family"], defaults=DEFAULTS,
                                      style=style, reference=reference)
    assert gen.describe() == case["internal"]
    if reference is not None:
        assert gen.init_image.size == (gen.width, gen.height)  # cropped to the ratio, then resized
    assert translate.prompt_record(body, style) == case["prompts"]


def test_record_to_wire():
    case = load("image_response")
    r = case["record"]
    record = StudioImage(**{**r, "created_at": datetime(2023, 11, 7, 5, 31, 56, tzinfo=timezone.utc)})
    upscaled = StudioImage(id=130, status="COMPLETED", scale_size="4x")
    marks = [SimpleNamespace(owner_id=7, image_id=123), SimpleNamespace(owner_id=9, image_id=123)]
    view = ImageView(record, marks, [upscaled], b"RIFF")
    assert translate.response([view], Balances(5, 10, 20), 7) == case["wire"]


def test_default_ratio_tables_are_the_real_ones():
    assert translate.resolution("sdxl", "square") == (1024, 1024)
    assert translate.resolution("sdxl", "vertical") == (896, 1152)
    assert translate.resolution("sdxl", "16:9") == (1344, 768)
    assert translate.resolution("sd", "1:1") == (512, 512)
    assert translate.resolution("sd", "3:4") == (512, 688)
    assert translate.resolution("sd", "horizontal") == (688, 512)
    for family in ("sd", "sdxl", "unclip"):
        for ratio in ("1:1", "3:4", "4:3", "9:16", "16:9"):
            w, h = translate.resolution(family, ratio)
            assert w % 8 == 0 and h % 8 == 0
    assert translate.resolution("sd", "1:1", {"sd": {"1:1": "64x64"}}) == (64, 64)
    assert translate.resolution("sd", "3:4", {"sd": {"1:1": "64x64"}}) == (512, 688)  # overrides per entry


def test_reference_with_an_unclip_model_is_not_supported():
    body = CreateRequest.model_validate({"prompt": "x", "image": "1/a.png", "ratio": "1:1"})
    with pytest.raises(NotSupported):
        translate.create_to_request(body, model_id="k", family="unclip", defaults=DEFAULTS,
                                    reference=Image.new("RGB", (8, 8)))


@pytest.mark.parametrize("enhanced, translated, main, source", [
    ("a unicorn", None, "a unicorn", "enhancedPrompt"),  # English enhancedPrompt is drawn instead of prompt
    ("a unicorn", "ENGLISH", "a unicorn", "enhancedPrompt"),
    ("유니콘", "ENGLISH", "ENGLISH", "prompt (translated)"),  # a Korean enhancedPrompt is not used
    ("유니콘", None, "유니콘이 뛰어논다", "prompt (untranslated: no translation model configured)"),
    ("   ", None, "유니콘이 뛰어논다", "prompt (untranslated: no translation model configured)"),
    (None, "ENGLISH", "ENGLISH", "prompt (translated)"),
])
def test_which_prompt_is_drawn(enhanced, translated, main, source):
    body = CreateRequest.model_validate({"prompt": "유니콘이 뛰어논다", "styleId": 1, "ratio": "1:1",
                                         **({"enhancedPrompt": enhanced} if enhanced is not None else {})})
    assert translate.needs_translation(body) is (source != "enhancedPrompt")
    assert translate.drawn_prompt(body, translated) == (main, source)
    assert translate.prompt_record(body, None, translated)["originalPrompt"] == "유니콘이 뛰어논다"


def test_style_lora_goes_to_the_request_and_is_refused_unresolved():
    style = translate.StyleSpec("ink", "ink of {prompt}", lora={"name": "ink-lines", "weight": 0.7})
    ref = LoraRef(name="ink-lines", path="/assets/x.safetensors", weight=0.7)
    for source in ({"styleId": 5}, {"collectionId": 6}):
        body = CreateRequest.model_validate({"prompt": "x", "ratio": "1:1", **source})
        with pytest.raises(NotSupported) as e:
            translate.create_to_request(body, model_id="m", family="sd", defaults=DEFAULTS, style=style)
        assert e.value.field == next(iter(source)) and "ink-lines" in e.value.message
        gen = translate.create_to_request(body, model_id="m", family="sd", defaults=DEFAULTS, style=style,
                                          style_lora=ref)
        assert gen.loras == (ref,)


def test_reference_image_is_an_image_prompt_only_on_a_model_with_an_ip_adapter():
    body = CreateRequest.model_validate({"prompt": "x", "ratio": "1:1", "image": "1/reference-1.png"})
    reference = Image.new("RGB", (300, 200), (10, 200, 30))
    plain = translate.create_to_request(body, model_id="m", family="sd", defaults=DEFAULTS, reference=reference)
    assert plain.task == "img2img" and plain.strength == DEFAULTS.reference_strength and plain.image_prompt is None
    guided = translate.create_to_request(body, model_id="m", family="sd", defaults=DEFAULTS, reference=reference,
                                         image_prompt=True)
    assert guided.task == "txt2img" and guided.init_image is None
    assert guided.image_prompt.scale == DEFAULTS.reference_scale
    assert guided.image_prompt.images[0].size == (guided.width, guided.height)
