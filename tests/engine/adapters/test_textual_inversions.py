"""Textual inversions: the trigger word's embedding changes the prompt embedding for that request only."""

import numpy as np
import pytest
import torch

from pixelserve.core.request import TextualInversionRef
from pixelserve.engine.adapters import base as adapter_base, textual_inversion
from pixelserve.engine.text import prompts
from pixelserve.engine.demo import tiny_adapters
from pixelserve.errors import InvalidRequest
from tests.engine.conftest import generate, request_for


def _embeds(model, request):
    base = adapter_base.own_base(model)
    return prompts.pipeline_kwargs(base, model.spec.family, request, prompts.PromptLists.of([request]))


@pytest.mark.parametrize("model_id,family", [("tiny-sd", "sd"), ("tiny-sdxl", "sdxl")])
def test_trigger_word_changes_the_embedding_for_its_request_only(tiny_models, adapter_dir, model_id, family):
    model = tiny_models[model_id]
    encoders = textual_inversion.text_encoders(model.pipe)
    tables = [e.text_encoder.get_input_embeddings() for e in encoders]
    vocab = [len(e.tokenizer) for e in encoders]
    ti = TextualInversionRef("style", str(tiny_adapters.ensure_tiny_textual_inversion(family, adapter_dir)), "<sty>")
    prompt = "a <sty> cube"
    plain = request_for(model_id, prompt=prompt, prompt_weighting=True)
    before = _embeds(model, plain)["prompt_embeds"].clone()
    image_before = generate(model, plain)

    with_ti = _embeds(model, plain.with_(textual_inversions=(ti,)))["prompt_embeds"]
    assert (with_ti - before).abs().max() > 0.1
    image_ti = generate(model, plain.with_(textual_inversions=(ti,)))
    assert np.abs(image_ti - image_before).mean() > 0.05
    # The same text without the embedding: exactly the old embedding, tokenizers and tables untouched.
    adapter_base.own_base(model).embeddings = adapter_base.LRU(adapter_base.MAX_EMBEDDINGS)  # encode afresh, no cache
    assert torch.equal(_embeds(model, plain)["prompt_embeds"], before)
    assert np.array_equal(generate(model, plain), image_before)
    assert [e.text_encoder.get_input_embeddings() for e in encoders] == tables
    assert [len(e.tokenizer) for e in encoders] == vocab
    assert all("<sty>" not in e.tokenizer.get_vocab() for e in encoders)
    # Unweighted requests with a textual inversion take the embeddings path too.
    assert np.array_equal(generate(model, request_for(model_id, prompt=prompt, textual_inversions=(ti,))), image_ti)


def test_an_sd_embedding_on_sdxl_is_refused(tiny_models, adapter_dir):
    ti = TextualInversionRef("sd-style", str(tiny_adapters.ensure_tiny_textual_inversion("sd", adapter_dir)), "<s>")
    with pytest.raises(InvalidRequest) as e:
        generate(tiny_models["tiny-sdxl"], request_for("tiny-sdxl", prompt="a <s>", textual_inversions=(ti,)))
    assert e.value.field == "textual_inversions" and "clip_l" in e.value.message
