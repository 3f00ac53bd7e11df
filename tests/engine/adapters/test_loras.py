"""LoRAs: several at once with per-request weights, none of them leaking into the next request."""

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from pixelserve.core.request import LoraRef
from pixelserve.engine.adapters import base as adapter_base, lora
from pixelserve.engine.demo import tiny_adapters
from pixelserve.engine.runners.batching import batch_key
from pixelserve.errors import InvalidRequest
from tests.engine.conftest import generate, request_for


def _variant(path, out, scale=None, unet_only=False):
    """Another LoRA file from the tiny one: up weights scaled, or only its UNet part."""
    state = load_file(path)
    if unet_only:
        state = {k: v for k, v in state.items() if k.startswith("lora_unet_")}
    if scale is not None:
        state = {k: v * scale if k.endswith("lora_up.weight") else v for k, v in state.items()}
    save_file(state, str(out))
    return str(out)


@pytest.mark.parametrize("model_id,family", [("tiny-sd", "sd"), ("tiny-sdxl", "sdxl")])
def test_loras_change_the_image_and_never_leak(tiny_models, adapter_dir, tmp_path, model_id, family):
    model = tiny_models[model_id]
    path = str(tiny_adapters.ensure_tiny_lora(family, adapter_dir))
    other = _variant(path, tmp_path / "other.safetensors", scale=1.5)
    unet_only = _variant(path, tmp_path / "unet-only.safetensors", unet_only=True)
    before = generate(model, request_for(model_id))  # no LoRA was ever loaded on this model

    one = generate(model, request_for(model_id, loras=(LoraRef("a", path, 1.0),)))
    half = generate(model, request_for(model_id, loras=(LoraRef("a", path, 0.5),)))
    both = generate(model, request_for(model_id, loras=(LoraRef("a", path, 1.0), LoraRef("b", other, 0.7))))
    mixed = generate(model, request_for(model_id, loras=(LoraRef("u", unet_only, 1.0), LoraRef("b", other, 0.3))))
    for image in (one, half, both, mixed):
        assert np.abs(image - before).mean() > 1.0
    assert np.abs(one - half).mean() > 0.5 and np.abs(one - both).mean() > 0.5
    # Each request gets its own set, whatever ran before it.
    assert np.array_equal(generate(model, request_for(model_id, loras=(LoraRef("a", path, 1.0),))), one)
    assert np.array_equal(generate(model, request_for(model_id)), before)
    assert np.array_equal(generate(model, request_for(model_id, loras=(LoraRef("a", path, 0.0),))), before)
    assert len(adapter_base.own_base(model).loras) == 3  # kept loaded for the next request that names them
    assert not any(m.disable_adapters is False and m.active_adapters
                   for _, m in model.pipe.unet.named_modules() if hasattr(m, "lora_A"))  # nothing active between calls


def test_a_lora_of_another_family_is_refused_and_leaves_the_model_clean(tiny_models, adapter_dir):
    model = tiny_models["tiny-sd"]
    before = generate(model, request_for("tiny-sd"))
    xl = str(tiny_adapters.ensure_tiny_lora("sdxl", adapter_dir))
    with pytest.raises(InvalidRequest) as e:
        generate(model, request_for("tiny-sd", loras=(LoraRef("xl", xl, 1.0),)))
    assert e.value.field == "loras" and "'xl'" in e.value.message
    assert lora.lora_name(xl) not in lora._loaded_adapters(model.pipe)
    assert np.array_equal(generate(model, request_for("tiny-sd")), before)


def test_least_recently_used_loras_are_deleted(tiny_models, adapter_dir, tmp_path, monkeypatch):
    model = tiny_models["tiny-sd"]
    monkeypatch.setattr(adapter_base, "MAX_LORAS", 2)
    base = adapter_base.Base(model.pipe, "bounded")  # a base with the patched bound
    path = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    files = [_variant(path, tmp_path / f"v{i}.safetensors", scale=1 + i) for i in range(3)]
    try:
        for f in files:
            lora.activate_loras(base, (LoraRef(f, f, 1.0),))
        names = [lora.lora_name(f) for f in files]
        assert base.loras.keys() == names[1:]
        assert lora._loaded_adapters(model.pipe) >= set(names[1:])
        assert names[0] not in lora._loaded_adapters(model.pipe)
        with pytest.raises(InvalidRequest):
            lora.activate_loras(base, tuple(LoraRef(f, f, 1.0) for f in files))
    finally:
        model.pipe.delete_adapters(base.loras.keys())


def test_batches_only_stack_the_same_lora_set(adapter_dir):
    path = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    a = request_for("tiny-sd", loras=(LoraRef("a", path, 1.0),))
    assert batch_key(a) == batch_key(a.with_(prompt="another prompt", seeds=(9,)))
    assert batch_key(a) != batch_key(a.with_(loras=(LoraRef("a", path, 0.5),)))
    assert batch_key(a) != batch_key(a.with_(loras=()))


def test_a_lora_naming_no_layer_of_the_model_is_refused_and_leaves_it_clean(tiny_models, tmp_path):
    import torch

    model = tiny_models["tiny-sd"]
    before = generate(model, request_for("tiny-sd"))
    stray = tmp_path / "stray.safetensors"
    save_file({"lora_unet_nowhere.lora_down.weight": torch.ones(4, 4),
               "lora_unet_nowhere.lora_up.weight": torch.ones(4, 4)}, str(stray))
    with pytest.raises(InvalidRequest) as e:
        generate(model, request_for("tiny-sd", loras=(LoraRef("stray", str(stray), 1.0),)))
    assert e.value.field == "loras" and "stray" in e.value.message
    assert np.array_equal(generate(model, request_for("tiny-sd")), before)
