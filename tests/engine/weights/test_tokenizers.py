"""Tokenizers are loaded once per process and shared read-only (engine/weights/tokenizers.py)."""

import shutil

import torch

from pixelserve.engine.adapters.textual_inversion import text_encoders
from pixelserve.engine.demo import tiny
from pixelserve.engine.weights import tokenizers
from pixelserve.engine.weights.loading import load_pipeline


def test_copies_of_one_model_share_one_tokenizer_instance(tiny_cache, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    folder = tiny.ensure_tiny_model("sdxl", tiny_cache / "tiny")
    copy = shutil.copytree(folder, tmp_path / "copy")
    a = load_pipeline(StableDiffusionXLPipeline, folder, "sdxl", torch.float32, tmp_path)
    b = load_pipeline(StableDiffusionXLPipeline, copy, "sdxl", torch.float32, tmp_path)
    # Same files, wherever they are: one instance (SDXL's two tokenizers are the same files too).
    assert a.tokenizer is b.tokenizer is a.tokenizer_2 is b.tokenizer_2
    assert a.text_encoder is not b.text_encoder  # only tokenizers are shared


def test_changed_files_load_a_new_tokenizer(tiny_cache, tmp_path):
    folder = shutil.copytree(tiny.ensure_tiny_model("sd", tiny_cache / "tiny"), tmp_path / "m")
    first = tokenizers.shared_tokenizers(folder)["tokenizer"]
    config = folder / "tokenizer" / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"model_max_length": 77', '"model_max_length": 76'))
    second = tokenizers.shared_tokenizers(folder)["tokenizer"]
    assert second is not first and second.model_max_length == 76 and first.model_max_length == 77


def test_a_textual_inversion_leaves_the_shared_tokenizer_unchanged(tiny_cache, tmp_path):
    from diffusers import StableDiffusionPipeline

    from pixelserve.core.request import TextualInversionRef
    from pixelserve.engine.adapters.textual_inversion import _load_ti_set
    from pixelserve.engine.demo import tiny_adapters

    pipe = load_pipeline(StableDiffusionPipeline, tiny.ensure_tiny_model("sd", tiny_cache / "tiny"), "sd",
                         torch.float32, tmp_path)
    shared, size = pipe.tokenizer, len(pipe.tokenizer)
    ti = str(tiny_adapters.ensure_tiny_textual_inversion("sd", tmp_path))
    loaded = _load_ti_set(pipe, text_encoders(pipe), (TextualInversionRef("t", ti, "<my-token>"),))
    assert len(loaded[0][0]) > size  # the copy has the new token
    assert pipe.tokenizer is shared and len(shared) == size and "<my-token>" not in shared.get_vocab()
