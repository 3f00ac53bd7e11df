"""Tiny models are written with save_pretrained and come back through the real loader."""

import hashlib

import pytest
import torch
from safetensors.torch import load_file

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.demo import tiny
from pixelserve.engine.runners.models import ModelRegistry
from pixelserve.engine.weights.formats import WeightsFormatError, detect_format
from pixelserve.engine.weights.loading import load_pipeline


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_saved_as_safetensors_only(tiny_cache, family):
    folder = tiny.ensure_tiny_model(family, tiny_cache / "tiny")
    assert (folder / "model_index.json").is_file()
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".bin", ".ckpt", ".pt", ".pth")) for f in files)


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_registry_loads_weights_from_disk(tiny_cache, family):
    registry = ModelRegistry({"m": ModelSpec("m", family, None)}, tiny_cache)
    model = registry.get("m", "cpu")
    assert registry.is_loaded("m", "cpu")
    assert type(model.pipe).__name__ == {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
                                         "unclip": "UnCLIPPipeline"}[family]
    denoiser = "decoder" if family == "unclip" else "unet"
    on_disk = load_file(next((registry.weights_path(model.spec) / denoiser).glob("*.safetensors")))
    loaded = getattr(model.pipe, denoiser).state_dict()
    assert on_disk.keys() == loaded.keys()
    assert all(torch.equal(on_disk[k], loaded[k]) for k in on_disk)
    assert registry.get("m", "cpu") is model  # cached, loaded once


def test_tiny_models_are_deterministic(tmp_path):
    a = tiny.ensure_tiny_model("sd", tmp_path / "a")
    b = tiny.ensure_tiny_model("sd", tmp_path / "b")

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*.safetensors"))}

    assert digest(a) == digest(b) and digest(a)


def test_tiny_tokenizer_tokenizes(tiny_cache):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tiny.ensure_tiny_model("sd", tiny_cache / "tiny") / "tokenizer")
    ids = tok("a cat on the beach").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) > 4
    assert tok.unk_token_id not in ids[1:-1]  # CLIP uses <|endoftext|> as unk too


def test_detect_format(tiny_cache, tmp_path):
    folder = tiny.ensure_tiny_model("sd", tiny_cache / "tiny")
    assert detect_format(folder) == "diffusers"
    st = next((folder / "unet").glob("*.safetensors"))
    assert detect_format(st) == "single_file"
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle stream header
    renamed = tmp_path / "pickle.safetensors"
    renamed.write_bytes(pickle.read_bytes())
    for bad in (pickle, renamed, tmp_path, tmp_path / "missing"):
        with pytest.raises(WeightsFormatError):
            detect_format(bad)


def test_pickle_only_diffusers_folder_is_refused(tiny_cache, tmp_path):
    import shutil

    src = tiny.ensure_tiny_model("sd", tiny_cache / "tiny")
    dst = tmp_path / "pickled"
    shutil.copytree(src, dst)
    for st in (dst / "unet").glob("*.safetensors"):
        st.rename(st.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(WeightsFormatError, match="pickle"):
        load_pipeline(None, dst, "sd", torch.float32, tmp_path)


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_tiny_models_tokenize_with_the_real_clip_vocabulary(tiny_cache, family):
    from transformers import CLIPTextConfig, CLIPTokenizer

    folder = tiny.ensure_tiny_model(family, tiny_cache / "tiny")
    tok_dir, te_dir = ("tokenizer", "text_encoder") if family != "sdxl" else ("tokenizer_2", "text_encoder_2")
    tok = CLIPTokenizer.from_pretrained(folder / tok_dir)
    config = CLIPTextConfig.from_pretrained(folder / te_dir)
    assert len(tok) == config.vocab_size == 49408 and config.eos_token_id == tok.eos_token_id == 49407
    assert tok("a photo of a cute monster", add_special_tokens=False)["input_ids"] == [
        320, 1125, 539, 320, 2242, 6060]  # CLIP's own ids: one token per ordinary word
