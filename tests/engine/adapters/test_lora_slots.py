"""LoRAs on a torch.compile'd UNet (engine/adapters/lora_slots.py): switching them recompiles nothing.

Before the slots, each new LoRA, weight or combination made dynamo recompile the UNet (2-5 s each
for this tiny model) and after eight it ran the UNet eagerly. Now the graphs compiled for 0, 1 and
2 LoRAs serve every later request, and the images equal the eager path's within the compile
tolerance.
"""

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import LoraRef
from pixelserve.engine.adapters import base as adapter_base, lora
from pixelserve.engine.speed import optimize
from pixelserve.engine.demo import tiny_adapters
from pixelserve.engine.runners.models import ModelRegistry
from pixelserve.errors import InvalidRequest
from tests.engine.conftest import generate, request_for
from tests.engine.speed.test_optimize import TOLERANCE


def _scaled(path, out, scale):
    state = {k: v * scale if k.endswith("lora_up.weight") else v for k, v in load_file(path).items()}
    save_file(state, str(out))
    return str(out)


def _compiled(model_id, tiny_cache, tmp_path_factory):
    cache = tmp_path_factory.mktemp(f"compiled-{model_id}")
    (cache / "tiny").symlink_to(tiny_cache / "tiny")
    optimize.use_compile_cache(cache / "compile")
    model = ModelRegistry(demo_config().models, cache).get(model_id, "cpu")
    optimize.apply(model.pipe, "cpu", optimize.Optimizations(compile=True))
    assert hasattr(model.pipe.unet, "_orig_mod")
    return model


@pytest.fixture(scope="module")
def compiled_sd(tiny_cache, tmp_path_factory):
    return _compiled("tiny-sd", tiny_cache, tmp_path_factory)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def test_switching_loras_and_weights_recompiles_nothing_and_matches_eager(compiled_sd, tiny_models, adapter_dir,
                                                                          tmp_path):
    a = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    b, c = _scaled(a, tmp_path / "b.safetensors", 1.5), _scaled(a, tmp_path / "c.safetensors", -0.8)
    plain = request_for("tiny-sd")

    def both(request):
        """(compiled, eager) images of one request."""
        return generate(compiled_sd, request), generate(tiny_models["tiny-sd"], request)

    # Warm-up: the graphs for 0, 1 and 2 LoRAs (adding a slot changes the layers once).
    before, _ = both(plain)
    for loras in ((LoraRef("a", a, 1.0),), (LoraRef("a", a, 1.0), LoraRef("b", b, 0.5)), ()):
        both(request_for("tiny-sd", loras=loras))
    one_lora, two_loras = both(request_for("tiny-sd", loras=(LoraRef("a", a, 1.0),)))[0], None
    warm = _graphs()

    for loras in [(LoraRef("b", b, 1.0),), (LoraRef("c", c, 1.0),), (LoraRef("a", a, 0.5),),
                  (LoraRef("c", c, 0.7), LoraRef("b", b, 1.0)), (LoraRef("b", b, 2.0), LoraRef("a", a, -1.0)),
                  (), (LoraRef("c", c, 1.3),)]:
        compiled, eager = both(request_for("tiny-sd", loras=loras))
        assert np.abs(compiled - eager).max() <= TOLERANCE, loras
        if loras:
            assert np.abs(compiled - before).mean() > 1.0, loras  # the LoRA did change the image
        two_loras = compiled if len(loras) == 2 else two_loras
    assert _graphs() == warm  # new LoRAs, weights and combinations: not one graph compiled
    assert np.abs(generate(compiled_sd, plain) - before).max() <= TOLERANCE  # nothing leaks into plain
    assert np.abs(one_lora - two_loras).mean() > 0.5


def test_slot_layers_hold_the_weights_as_tensors_and_switch_off(compiled_sd, adapter_dir, tmp_path):
    import torch

    a = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    b = _scaled(a, tmp_path / "b2.safetensors", 3.0)
    base = adapter_base.own_base(compiled_sd)
    lora.activate_loras(base, (LoraRef("b", b, 0.5),))
    layers = [m for m in compiled_sd.pipe.unet._orig_mod.modules() if hasattr(m, "lora_A")]
    assert layers and all(not m.disable_adapters and m.active_adapters == ["slot0"] for m in layers)
    assert all(isinstance(m.scaling["slot0"], torch.Tensor) for m in layers)  # no float for dynamo to guard on
    held = base.slots.scales[0]
    assert held and all(float(t) == pytest.approx(0.5 * unit) for t, unit in held)
    assert not any(p.requires_grad for p in compiled_sd.pipe.unet._orig_mod.parameters())
    lora.deactivate_loras(base)
    assert all(m.disable_adapters for m in layers)


def test_a_lora_that_fits_no_layer_is_refused_under_compile_and_the_model_still_runs(compiled_sd, tmp_path):
    import torch

    stray = tmp_path / "stray.safetensors"
    save_file({"lora_unet_nowhere.lora_down.weight": torch.ones(4, 4),
               "lora_unet_nowhere.lora_up.weight": torch.ones(4, 4)}, str(stray))
    before = generate(compiled_sd, request_for("tiny-sd"))
    with pytest.raises(InvalidRequest) as e:
        generate(compiled_sd, request_for("tiny-sd", loras=(LoraRef("stray", str(stray), 1.0),)))
    assert e.value.field == "loras"
    assert np.abs(generate(compiled_sd, request_for("tiny-sd")) - before).max() <= TOLERANCE


def _higher_rank(path, out):
    """The same LoRA at twice the rank (each factor repeated; alphas kept), so another image."""
    import torch

    state = load_file(path)
    for key in [k for k in state if k.endswith("lora_down.weight")]:
        up = key.replace("lora_down", "lora_up")
        state[key] = torch.cat([state[key], state[key]], dim=0)
        state[up] = torch.cat([state[up], state[up]], dim=1)
    save_file(state, str(out))
    return str(out)


def test_a_higher_rank_lora_grows_the_slots_and_smaller_ones_still_swap_in(compiled_sd, tiny_models, adapter_dir,
                                                                           tmp_path):
    a = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    wide = _higher_rank(a, tmp_path / "wide.safetensors")
    b = _scaled(a, tmp_path / "b3.safetensors", 0.5)
    base = adapter_base.own_base(compiled_sd)
    for loras in ((LoraRef("a", a, 1.0),), (LoraRef("w", wide, 1.0),), (LoraRef("b", b, 1.0),)):
        request = request_for("tiny-sd", loras=loras)
        assert np.abs(generate(compiled_sd, request) - generate(tiny_models["tiny-sd"], request)).max() <= TOLERANCE
    assert base.slots.rank == 2 * tiny_adapters.LORA_RANK
    warm = _graphs()
    for loras in ((LoraRef("w", wide, 0.5),), (LoraRef("a", a, 1.0),)):  # wide and narrow, both in the grown slot
        request = request_for("tiny-sd", loras=loras)
        assert np.abs(generate(compiled_sd, request) - generate(tiny_models["tiny-sd"], request)).max() <= TOLERANCE
    assert _graphs() == warm


@pytest.fixture(scope="module")
def compiled_sdxl(tiny_cache, tmp_path_factory):
    return _compiled("tiny-sdxl", tiny_cache, tmp_path_factory)


def test_sdxl_loras_in_kohya_layout_swap_without_recompiling(compiled_sdxl, tiny_models, adapter_dir, tmp_path):
    """SDXL LoRAs name the UNet's blocks the SGM way and carry two text encoders' parts."""
    a = str(tiny_adapters.ensure_tiny_lora("sdxl", adapter_dir))
    b = _scaled(a, tmp_path / "xb.safetensors", -1.2)
    eager_model = tiny_models["tiny-sdxl"]
    first = request_for("tiny-sdxl", loras=(LoraRef("a", a, 1.0),))
    generate(compiled_sdxl, first)
    warm = _graphs()
    for loras in ((LoraRef("b", b, 1.0),), (LoraRef("a", a, 0.4),)):
        request = request_for("tiny-sdxl", loras=loras)
        assert np.abs(generate(compiled_sdxl, request) - generate(eager_model, request)).max() <= TOLERANCE
    assert _graphs() == warm
    te2 = compiled_sdxl.pipe.text_encoder_2
    assert lora.lora_name(a) in te2.peft_config  # the second text encoder's part is loaded there


def test_a_lora_on_more_layers_rebuilds_its_slot_and_narrower_ones_then_swap_in(tiny_cache, tmp_path_factory,
                                                                               tiny_models, adapter_dir, tmp_path):
    model = _compiled("tiny-sd", tiny_cache, tmp_path_factory)  # its own: slot 0 is built here
    a = str(tiny_adapters.ensure_tiny_lora("sd", adapter_dir))
    narrow = tmp_path / "attn1-only.safetensors"
    save_file({k: v for k, v in load_file(a).items() if "attn2" not in k}, str(narrow))
    full = _scaled(a, tmp_path / "full.safetensors", 0.9)

    def check(loras):
        request = request_for("tiny-sd", loras=loras)
        assert np.abs(generate(model, request) - generate(tiny_models["tiny-sd"], request)).max() <= TOLERANCE

    def attn2_in_slot0() -> bool:
        return any("attn2" in layer for layer in adapter_base.own_base(model).slots.covers[0])

    check((LoraRef("n", str(narrow), 1.0),))
    assert not attn2_in_slot0()
    check((LoraRef("f", full, 1.0),))  # attn2 too: slot 0 is rebuilt on the wider set of layers
    assert attn2_in_slot0()
    warm = _graphs()
    check((LoraRef("n", str(narrow), 0.8),))  # narrower: swapped into the wider slot, no new graph
    check((LoraRef("f", full, 1.0),))
    assert _graphs() == warm
