"""engine/weights/inspection.py: uploaded weights are checked by content against their kind and family."""

import pickle
import struct

import pytest

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.weights import inspection
from pixelserve.engine.demo import tiny_adapters
from pixelserve.engine.weights.inspection import AssetRejected, check_file, model_dims
from pixelserve.engine.weights.convert import save_single_file
from pixelserve.engine.demo.tiny import ensure_tiny_model

FAMILIES = ("sd", "sdxl")


@pytest.fixture(scope="module")
def dims(tiny_cache):
    return {f: model_dims(ModelSpec(f"tiny-{f}", f, None), tiny_cache) for f in FAMILIES}


@pytest.fixture(scope="module")
def files(tiny_cache, tmp_path_factory):
    """(kind, family) -> a tiny asset file as it would be uploaded."""
    out = tmp_path_factory.mktemp("assets")
    made = {}
    for family in FAMILIES:
        for kind in ("lora", "textual_inversion", "vae"):
            made[(kind, family)] = tiny_adapters.ensure_tiny_adapter(kind, family, out)
        folder = tiny_adapters.ensure_tiny_controlnet(family, out)
        made[("controlnet", family)] = folder / "diffusion_pytorch_model.safetensors"
        made[("checkpoint", family)] = save_single_file(ensure_tiny_model(family, tiny_cache / "tiny"),
                                                        out / f"{family}.safetensors", family)
    return made


def test_model_dims_of_the_tiny_models(dims):
    assert dims["sd"] == inspection.ModelDims(32, (32,), 4)
    assert dims["sdxl"] == inspection.ModelDims(64, (32, 32), 4)


@pytest.mark.parametrize("kind", ["lora", "textual_inversion", "vae", "controlnet", "checkpoint"])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_kind_is_accepted_for_its_family(files, dims, kind, family):
    assert check_file(files[(kind, family)], kind, family, dims[family])["tensors"] > 0


@pytest.mark.parametrize("kind", ["lora", "textual_inversion", "controlnet", "checkpoint"])
def test_each_kind_is_refused_for_the_other_family(files, dims, kind):
    for family, other in (("sd", "sdxl"), ("sdxl", "sd")):
        with pytest.raises(AssetRejected):
            check_file(files[(kind, family)], kind, other, dims[other])


@pytest.mark.parametrize("kind,claimed", [("vae", "lora"), ("lora", "vae"), ("lora", "textual_inversion"),
                                          ("checkpoint", "controlnet"), ("controlnet", "checkpoint"),
                                          ("textual_inversion", "vae")])
def test_a_file_of_another_kind_is_refused(files, dims, kind, claimed):
    with pytest.raises(AssetRejected) as e:
        check_file(files[(kind, "sd")], claimed, "sd", dims["sd"])
    assert str(e.value)


def test_wrong_family_lora_says_why(files, dims):
    with pytest.raises(AssetRejected, match="SDXL LoRA|64-wide"):
        check_file(files[("lora", "sdxl")], "lora", "sd", dims["sd"])


def test_pickle_and_garbage_are_refused_by_content(tmp_path, dims):
    pickled = tmp_path / "lora.safetensors"  # the name lies; the content decides
    pickled.write_bytes(pickle.dumps({"lora_unet_x.lora_down.weight": [1.0]}))
    for data in (pickle.dumps({"a": 1}), b"", b"{}", b"\x00" * 100):
        pickled.write_bytes(data)
        with pytest.raises(AssetRejected, match="not a safetensors"):
            check_file(pickled, "lora", "sd", dims["sd"])


def test_forged_or_truncated_headers_are_refused(tmp_path, files, dims):
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(struct.pack("<Q", 2**40) + b'{"a": 1}')  # an absurd header length
    with pytest.raises(AssetRejected, match="not a safetensors"):
        check_file(forged, "lora", "sd", dims["sd"])
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(files[("lora", "sd")].read_bytes()[:-100])
    with pytest.raises(AssetRejected, match="not a valid safetensors"):
        check_file(truncated, "lora", "sd", dims["sd"])


def test_a_tensor_that_is_no_lora_part_is_refused(tmp_path, dims):
    import numpy as np
    from safetensors.numpy import save_file

    f = tmp_path / "odd.safetensors"
    save_file({"lora_unet_a.lora_down.weight": np.zeros((4, 32), np.float16),
               "something_else.weight": np.zeros((4,), np.float16)}, str(f))
    with pytest.raises(AssetRejected, match="something_else"):
        check_file(f, "lora", "sd", dims["sd"])
