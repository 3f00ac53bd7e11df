"""The tiny adapters: real-world layouts, deterministic, and loadable by diffusers into the tiny models."""

import hashlib

import pytest
import torch
from safetensors.torch import load_file

from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.weights.formats import detect_format


def _digest(path):
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files if p.is_file())).hexdigest()


def test_lists_every_kind_for_both_families():
    assert set(tiny_adapters.tiny_adapters()) == {
        (k, f) for k in ("lora", "textual_inversion", "vae", "controlnet") for f in ("sd", "sdxl")}
    with pytest.raises(ValueError):
        tiny_adapters.ensure_tiny_adapter("lora", "unclip", "/nonexistent")
    with pytest.raises(ValueError):
        tiny_adapters.ensure_tiny_adapter("hypernetwork", "sd", "/nonexistent")


def test_deterministic_and_safetensors(tmp_path):
    for kind, family in tiny_adapters.tiny_adapters():
        a = tiny_adapters.ensure_tiny_adapter(kind, family, tmp_path / "a")
        b = tiny_adapters.ensure_tiny_adapter(kind, family, tmp_path / "b")
        assert _digest(a) == _digest(b), (kind, family)
        if kind == "controlnet":
            assert (a / "config.json").is_file() and (a / "diffusion_pytorch_model.safetensors").is_file()
        else:
            assert detect_format(a) == "single_file"
    assert not list(tmp_path.rglob("*.partial"))


def test_real_world_key_layouts(tmp_path):
    sd_lora = load_file(tiny_adapters.ensure_tiny_lora("sd", tmp_path))
    xl_lora = load_file(tiny_adapters.ensure_tiny_lora("sdxl", tmp_path))
    assert all(k.startswith(("lora_unet_down_blocks_", "lora_unet_mid_block_", "lora_unet_up_blocks_", "lora_te_"))
               for k in sd_lora)
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in sd_lora)
    assert any(k.startswith("lora_unet_input_blocks_") for k in xl_lora)
    assert {k.split("_text_model")[0] for k in xl_lora if "text_model" in k} == {"lora_te1", "lora_te2"}
    assert set(load_file(tiny_adapters.ensure_tiny_textual_inversion("sd", tmp_path))) == {"emb_params"}
    xl_ti = load_file(tiny_adapters.ensure_tiny_textual_inversion("sdxl", tmp_path))
    assert set(xl_ti) == {"clip_l", "clip_g"} and xl_ti["clip_l"].shape == (tiny_adapters.TI_VECTORS, 32)
    vae = load_file(tiny_adapters.ensure_tiny_vae("sd", tmp_path))
    assert "encoder.down.0.block.0.conv1.weight" in vae and "decoder.up.3.block.0.conv1.weight" in vae


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_lora_patches_every_module_it_names(tiny_cache, tmp_path, family):
    import diffusers

    cls = diffusers.StableDiffusionPipeline if family == "sd" else diffusers.StableDiffusionXLPipeline
    pipe = cls.from_pretrained(tiny.ensure_tiny_model(family, tiny_cache / "tiny"), local_files_only=True)
    path = tiny_adapters.ensure_tiny_lora(family, tmp_path)
    pipe.load_lora_weights(str(path), adapter_name="tiny")
    unet_modules = sum(1 for k in load_file(path) if k.startswith("lora_unet_") and k.endswith(".alpha"))
    patched = sum(1 for _, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "tiny" in m.lora_A)
    assert patched == unet_modules > 0
    encoders = ["text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    assert sorted(pipe.get_list_adapters()) == sorted(["unet", *encoders])


def test_controlnet_output_convolutions_are_not_zero(tmp_path):
    from diffusers import ControlNetModel

    cn = ControlNetModel.from_pretrained(tiny_adapters.ensure_tiny_controlnet("sd", tmp_path),
                                         local_files_only=True, use_safetensors=True)
    assert all(torch.count_nonzero(b.weight) > 0 for b in cn.controlnet_down_blocks)
    assert cn.config.cross_attention_dim == 32
