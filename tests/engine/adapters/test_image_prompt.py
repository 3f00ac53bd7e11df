"""Image prompts (OctoAI transfer_images) through a configured IP-Adapter; a clear 501 without one."""

import numpy as np
import pytest
from PIL import Image

from pixelserve.core.model_config import ConfigError, ModelSpec, load_models_config
from pixelserve.core.request import ImagePromptRef
from pixelserve.engine import checks
from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.runners.models import ModelRegistry
from pixelserve.errors import NotSupported
from tests.engine.conftest import generate, request_for


def _reference():
    im = Image.new("RGB", (48, 48), (250, 30, 30))
    im.paste((20, 20, 240), (10, 10, 30, 30))
    return im


def test_without_an_ip_adapter_image_prompts_are_refused(tiny_models):
    spec = tiny_models["tiny-sd"].spec
    with pytest.raises(NotSupported) as e:
        checks.check_request(request_for("tiny-sd", image_prompt=ImagePromptRef((_reference(),))), spec, None)
    assert e.value.field == "transfer_images" and "IP-Adapter" in e.value.message


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_ip_adapter_guides_its_request_only(tiny_cache, adapter_dir, tmp_path, family):
    folder = tiny_adapters.ensure_tiny_ip_adapter(family, adapter_dir)
    spec = ModelSpec("ip", family, tiny.ensure_tiny_model(family, tiny_cache / "tiny"),
                     ip_adapter=folder / tiny_adapters.IP_ADAPTER_FILE,
                     image_encoder=folder / tiny_adapters.IMAGE_ENCODER_FOLDER)
    model = ModelRegistry({"ip": spec}, tmp_path).get("ip", "cpu")
    processors = dict(model.pipe.unet.attn_processors)
    before = generate(model, request_for("ip"))
    checks.check_request(request_for("ip", image_prompt=ImagePromptRef((_reference(),))), spec, None)

    guided = generate(model, request_for("ip", image_prompt=ImagePromptRef((_reference(),), scale=1.0)))
    weaker = generate(model, request_for("ip", image_prompt=ImagePromptRef((_reference(),), scale=0.3)))
    two = generate(model, request_for("ip", image_prompt=ImagePromptRef((_reference(), _reference().rotate(90)),
                                                                        scale=1.0)))
    assert np.abs(guided - before).mean() > 0.5
    assert np.abs(guided - weaker).mean() > 0.1 and np.abs(guided - two).mean() > 0.05
    # The UNet is back as it was: same processor objects, no image projection, the same image.
    assert dict(model.pipe.unet.attn_processors) == processors and model.pipe.unet.encoder_hid_proj is None
    assert np.array_equal(generate(model, request_for("ip")), before)
    assert model.pipe.components.get("image_encoder") is None


def test_model_config_takes_ip_adapter_and_image_encoder_together(tmp_path, adapter_dir):
    folder = tiny_adapters.ensure_tiny_ip_adapter("sd", adapter_dir)
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"x")
    base = f'[models.m]\nfamily = "sd"\npath = "{weights}"\n'
    good = tmp_path / "good.toml"
    good.write_text(base + f'ip_adapter = "{folder / "ip-adapter.safetensors"}"\n'
                           f'image_encoder = "{folder / "image_encoder"}"\n')
    spec = load_models_config(good).models["m"]
    assert spec.ip_adapter.name == "ip-adapter.safetensors" and spec.image_encoder.is_dir()
    half = tmp_path / "half.toml"
    half.write_text(base + f'ip_adapter = "{folder / "ip-adapter.safetensors"}"\n')
    with pytest.raises(ConfigError, match="go together"):
        load_models_config(half)
