"""Per-request VAE and checkpoint overrides: used by that call's pipeline only, loaded once."""

import numpy as np
import pytest
import torch

from pixelserve.engine.adapters import checkpoint

from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.weights.convert import save_single_file
from pixelserve.errors import InvalidRequest
from tests.engine.conftest import generate, request_for


@pytest.mark.parametrize("model_id,family", [("tiny-sd", "sd"), ("tiny-sdxl", "sdxl")])
def test_vae_override_changes_the_image_for_its_request_only(tiny_models, adapter_dir, tmp_path, model_id, family):
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    model = tiny_models[model_id]
    own_vae = model.pipe.vae
    before = generate(model, request_for(model_id))
    path = str(tiny_adapters.ensure_tiny_vae(family, adapter_dir))  # original (LDM) layout
    with_vae = generate(model, request_for(model_id, vae=path))
    assert np.abs(with_vae - before).mean() > 5
    assert np.array_equal(generate(model, request_for(model_id)), before)
    assert model.pipe.vae is own_vae and len(model.state["vaes"]) == 1
    # A VAE in diffusers' own key layout loads as well.
    torch.manual_seed(1)
    save_file({k: v.contiguous() for k, v in AutoencoderKL(**tiny._VAE).state_dict().items()},
              str(tmp_path / "diffusers-vae.safetensors"))
    other = generate(model, request_for(model_id, vae=str(tmp_path / "diffusers-vae.safetensors")))
    assert np.abs(other - before).mean() > 5 and np.abs(other - with_vae).mean() > 5


def test_a_vae_of_another_shape_is_refused(tiny_models, tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad-vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(3, 3, 3, 3)}, str(bad))
    with pytest.raises(InvalidRequest) as e:
        generate(tiny_models["tiny-sd"], request_for("tiny-sd", vae=str(bad)))
    assert e.value.field == "vae"


@pytest.fixture(scope="module")
def other_checkpoint(tiny_cache, tmp_path_factory):
    """The tiny SD model with other UNet weights, as a diffusers folder and as one original-layout file."""
    from diffusers import StableDiffusionPipeline

    out = tmp_path_factory.mktemp("checkpoint")
    pipe = StableDiffusionPipeline.from_pretrained(tiny.ensure_tiny_model("sd", tiny_cache / "tiny"))
    torch.manual_seed(11)
    with torch.no_grad():
        for p in pipe.unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    pipe.save_pretrained(out / "folder", safe_serialization=True)
    return out / "folder", save_single_file(out / "folder", out / "other.safetensors", "sd")


def test_checkpoint_override_is_this_calls_base(tiny_models, other_checkpoint):
    model = tiny_models["tiny-sd"]
    folder, single = other_checkpoint
    before = generate(model, request_for("tiny-sd"))
    from_folder = generate(model, request_for("tiny-sd", checkpoint=str(folder)))
    assert np.abs(from_folder - before).mean() > 1
    assert np.array_equal(generate(model, request_for("tiny-sd")), before)
    # One file: its architecture is the model's own (here the tiny folder's configs).
    from_file = generate(model, request_for("tiny-sd", checkpoint=str(single)))
    assert np.abs(from_file - from_folder).max() <= 1
    assert len(model.state["checkpoints"]) == checkpoint.MAX_CHECKPOINTS  # bounded: the folder one was let go
    assert np.array_equal(generate(model, request_for("tiny-sd")), before)
