"""check(): adapter files exist and are safetensors by content, families match, unclip refuses them."""

import pytest
from PIL import Image

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import ControlNetRef, LoraRef, TextualInversionRef
from pixelserve.engine import checks
from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.weights.convert import save_single_file
from pixelserve.errors import InvalidRequest, NotSupported
from tests.engine.conftest import request_for

SPECS = demo_config().models


def check(model_id, info=None, **kw):
    checks.check_request(request_for(model_id, **kw), SPECS[model_id], info)


def refused(exc, model_id, info=None, **kw):
    with pytest.raises(exc) as e:
        check(model_id, info, **kw)
    return e.value


def test_adapter_files_must_be_safetensors(adapter_dir, tmp_path):
    lora = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    check("tiny-sd", loras=(LoraRef("ok", lora, 0.8),))
    pickle = tmp_path / "evil.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle, whatever its name says
    for path in (str(tmp_path / "missing.safetensors"), str(pickle), str(tmp_path)):
        err = refused(InvalidRequest, "tiny-sd", loras=(LoraRef("mine", path, 1.0),))
        assert err.field == "loras" and "'mine'" in err.message and str(tmp_path) not in err.message
    err = refused(InvalidRequest, "tiny-sd", textual_inversions=(TextualInversionRef("t", str(pickle), "<t>"),))
    assert err.field == "textual_inversions"
    assert refused(InvalidRequest, "tiny-sd", vae=str(pickle)).field == "vae"
    ti = str(tiny_adapters.ensure_tiny_textual_inversion("sd", adapter_dir))
    assert refused(InvalidRequest, "tiny-sd", textual_inversions=(TextualInversionRef("t", ti, "two words"),)).field \
        == "textual_inversions"


def test_checkpoint_must_be_of_the_models_family(tiny_cache, tmp_path):
    sd_folder = tiny.ensure_tiny_model("sd", tiny_cache / "tiny")
    xl_file = save_single_file(tiny.ensure_tiny_model("sdxl", tiny_cache / "tiny"), tmp_path / "xl.safetensors", "sdxl")
    check("tiny-sd", checkpoint=str(sd_folder))
    check("tiny-sdxl", checkpoint=str(xl_file))
    assert "sdxl checkpoint" in refused(InvalidRequest, "tiny-sd", checkpoint=str(xl_file)).message
    assert refused(InvalidRequest, "tiny-sdxl", checkpoint=str(sd_folder)).field == "checkpoint"
    assert refused(InvalidRequest, "tiny-sd", checkpoint=str(tmp_path / "nope")).field == "checkpoint"


def test_controlnet_must_fit_the_model(adapter_dir, tmp_path):
    image = Image.new("RGB", (64, 64))
    sd = str(tiny_adapters.ensure_tiny_controlnet("sd", adapter_dir))
    xl = str(tiny_adapters.ensure_tiny_controlnet("sdxl", adapter_dir))
    check("tiny-sd", controlnet=ControlNetRef("c", sd, image))
    check("tiny-sdxl", controlnet=ControlNetRef("c", xl, image))
    assert "sdxl ControlNet" in refused(InvalidRequest, "tiny-sd", controlnet=ControlNetRef("c", xl, image)).message
    (tmp_path / "empty").mkdir()
    assert refused(InvalidRequest, "tiny-sd", controlnet=ControlNetRef("c", str(tmp_path / "empty"), image)).field \
        == "controlnet"
    err = refused(NotSupported, "tiny-sd", controlnet=ControlNetRef("c", sd, image, preprocess="openpose"))
    assert err.field == "controlnet_preprocess" and "openpose" in err.message
    assert refused(InvalidRequest, "tiny-sd", controlnet=ControlNetRef("c", sd, image, end=1.5)).field \
        == "controlnet_early_stop"


def test_unclip_refuses_the_octoai_features(adapter_dir):
    lora = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    for kw, field in [({"loras": (LoraRef("l", lora),)}, "loras"), ({"prompt_weighting": True}, "prompt_weighting"),
                      ({"clip_skip": 1}, "clip_skip"), ({"vae": lora}, "vae"), ({"prompt_2": "x"}, "prompt_2")]:
        assert refused(NotSupported, "tiny-unclip", **kw).field == field
    check("tiny-unclip")


def test_ranges_that_need_the_model(tiny_models):
    info = checks.text_info(tiny_models["tiny-sd"])
    assert info.text_layers == 2 and len(info.tokenizers) == 1
    check("tiny-sd", info, clip_skip=1)
    assert refused(InvalidRequest, "tiny-sd", info, clip_skip=2).field == "clip_skip"
    assert refused(InvalidRequest, "tiny-sdxl", high_noise_frac=1.0).field == "high_noise_frac"
    assert len(checks.text_info(tiny_models["tiny-sdxl"]).tokenizers) == 2


def test_an_image_prompt_without_an_ip_adapter_is_not_supported():
    from pixelserve.core.request import ImagePromptRef

    err = refused(NotSupported, "tiny-sd", image_prompt=ImagePromptRef(images=(Image.new("RGB", (8, 8)),)))
    assert err.field == "transfer_images" and "IP-Adapter" in err.message
