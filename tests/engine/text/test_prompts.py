"""Prompt weighting, long prompts, clip_skip, SDXL prompt_2, the token limits and the embeddings cache."""

import asyncio

import numpy as np
import pytest
import torch

from pixelserve.core.model_config import demo_config
from pixelserve.engine.adapters import base as adapter_base
from pixelserve.engine.text import prompts, weighting
from pixelserve.engine.runners.local import LocalEngine
from pixelserve.errors import InvalidRequest
from tests.engine.conftest import generate, request_for


# -- the syntax --------------------------------------------------------------------------------
def test_weight_is_the_product_of_the_brackets():
    assert weighting.parse_weighted("(A tall (beautiful:1.5) woman:0.8) (other:0.5)") == [
        ("A tall ", 0.8), ("beautiful", pytest.approx(1.2)), (" woman", 0.8), (" ", 1.0), ("other", 0.5)]


def test_bare_brackets_escapes_and_stray_characters():
    assert weighting.parse_weighted("a (cat) [dog]") == [
        ("a ", 1.0), ("cat", pytest.approx(1.1)), (" ", 1.0), ("dog", pytest.approx(1 / 1.1))]
    assert weighting.parse_weighted(r"a \(literal\) 16:9 C++") == [(r"a (literal) 16:9 C++", 1.0)]
    assert weighting.parse_weighted("unclosed (cat") == [("unclosed ", 1.0), ("cat", pytest.approx(1.1))]
    assert weighting.parse_weighted("((a))") == [("a", pytest.approx(1.21))]
    assert weighting.plain_text("(A tall (beautiful:1.5) woman:1.0)") == "A tall beautiful woman"


def test_syntax_does_not_count_as_tokens(tiny_models):
    tok = tiny_models["tiny-sd"].pipe.tokenizer
    plain = weighting.count_tokens(tok, "a tall beautiful woman", weighted=True)
    assert weighting.count_tokens(tok, "(a tall (beautiful:1.5) woman:1.0)", weighted=True) == plain
    assert weighting.count_tokens(tok, "(a tall (beautiful:1.5) woman:1.0)", weighted=False) > plain


# -- images ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_id", ["tiny-sd", "tiny-sdxl"])
def test_weighting_changes_the_image_and_plain_text_is_unchanged(tiny_models, model_id):
    model = tiny_models[model_id]
    plain = generate(model, request_for(model_id))
    # The embeddings path with no syntax draws exactly what the plain (diffusers-encoded) path draws.
    assert np.array_equal(generate(model, request_for(model_id, prompt_weighting=True)), plain)
    assert np.array_equal(generate(model, request_for(model_id, prompt_weighting=True,
                                                      prompt="(a red cube on a table:1.0)")), plain)
    weighted = generate(model, request_for(model_id, prompt_weighting=True, prompt="a (red cube:1.6) on a table"))
    assert np.abs(weighted - plain).mean() > 0.1
    assert np.array_equal(generate(model, request_for(model_id)), plain)  # nothing leaked


def test_sd_long_prompt_is_encoded_in_77_token_chunks(tiny_models):
    model = tiny_models["tiny-sd"]
    base = adapter_base.own_base(model)
    text = "red cube " * 40  # > 77 tokens for the tiny byte-level tokenizer
    n = weighting.count_tokens(model.pipe.tokenizer, text, weighted=True)
    req = request_for("tiny-sd", prompt=text, prompt_weighting=True)
    kw = prompts.pipeline_kwargs(base, "sd", req, prompts.PromptLists.of([req]))
    chunks = -(-n // weighting.CHUNK_TEXT_TOKENS)
    assert chunks >= 2 and kw["prompt_embeds"].shape[1] == 77 * chunks
    assert kw["negative_prompt_embeds"].shape == kw["prompt_embeds"].shape  # padded with empty chunks
    truncated = generate(model, request_for("tiny-sd", prompt=text))
    assert np.abs(generate(model, req) - truncated).mean() > 0  # the tail is not cut off any more


def test_clip_skip_matches_diffusers_meaning(tiny_models):
    model = tiny_models["tiny-sd"]
    pipe = model.pipe
    req = request_for("tiny-sd", clip_skip=1)
    kw = prompts.pipeline_kwargs(adapter_base.own_base(model), "sd", req, prompts.PromptLists.of([req]))
    ids = pipe.tokenizer([req.prompt], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.inference_mode():
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        expected = pipe.text_encoder.final_layer_norm(hidden)
    assert torch.allclose(kw["prompt_embeds"], expected, atol=1e-5)
    assert np.abs(generate(model, req) - generate(model, request_for("tiny-sd"))).mean() > 0.1


def test_sdxl_prompt_2_goes_to_the_second_encoder(tiny_models):
    model = tiny_models["tiny-sdxl"]
    plain = generate(model, request_for("tiny-sdxl"))
    assert np.array_equal(generate(model, request_for("tiny-sdxl", prompt_2="a red cube on a table")), plain)
    other = generate(model, request_for("tiny-sdxl", prompt_2="a blue sphere"))
    assert np.abs(other - plain).mean() > 0.1
    weighted = generate(model, request_for("tiny-sdxl", prompt_2="a blue sphere", prompt_weighting=True))
    assert np.array_equal(weighted, other)
    req = request_for("tiny-sdxl", prompt_2="a blue sphere", negative_prompt="dark", prompt_weighting=True)
    kw = prompts.pipeline_kwargs(adapter_base.own_base(model), "sdxl", req, prompts.PromptLists.of([req]))
    assert kw["prompt_embeds"].shape == (1, 77, 64) and kw["pooled_prompt_embeds"].shape == (1, 32)
    assert not torch.equal(kw["prompt_embeds"], kw["negative_prompt_embeds"])


def test_repeated_prompts_are_encoded_once(tiny_models, monkeypatch):
    model = tiny_models["tiny-sd"]
    base = adapter_base.own_base(model)
    calls = []
    encode = prompts._Embedder._encode
    monkeypatch.setattr(prompts._Embedder, "_encode", lambda self, role, text: calls.append(text) or encode(self, role, text))
    req = request_for("tiny-sd", prompt="(a cached prompt:1.2)", prompt_weighting=True)
    first = prompts.pipeline_kwargs(base, "sd", req, prompts.PromptLists.of([req]))
    n = len(calls)
    again = prompts.pipeline_kwargs(base, "sd", req, prompts.PromptLists.of([req, req]))
    assert n >= 1 and len(calls) == n and torch.equal(again["prompt_embeds"][1:], first["prompt_embeds"])
    prompts.pipeline_kwargs(base, "sd", req.with_(clip_skip=1), prompts.PromptLists.of([req]))
    assert len(calls) > n  # another clip_skip is another entry


def test_stacked_batch_keeps_each_prompt(tiny_models):
    from pixelserve.engine.families import family_for

    model = tiny_models["tiny-sdxl"]
    a = request_for("tiny-sdxl", prompt="(red:1.4) cube", prompt_weighting=True, seeds=(1,))
    b = request_for("tiny-sdxl", prompt="blue sphere", prompt_2="(a ball:0.5)", prompt_weighting=True, seeds=(2,))
    together = family_for("sdxl").run_many(model, [a, b])
    for req, images in zip((a, b), together):
        assert np.abs(np.asarray(images[0], dtype=int) - generate(model, req)[0]).max() <= 1


# -- the limits (LocalEngine.check) ------------------------------------------------------------
def test_check_names_the_field_over_the_limit(tiny_cache):
    async def go():
        engine = LocalEngine(demo_config().models, tiny_cache)
        await engine.start()
        await engine.wait_ready()
        try:
            tok = engine.registry.get("tiny-sd", "cpu").pipe.tokenizer
            word = "abcdefgh "  # a fixed number of tiny tokens
            per = weighting.count_tokens(tok, word, weighted=True)
            sdxl_fit = word * (75 // per)
            sd_fit = word * (225 // per)
            engine.check(request_for("tiny-sdxl", prompt=sdxl_fit, prompt_weighting=True))
            engine.check(request_for("tiny-sd", prompt=sd_fit, prompt_weighting=True))
            # brackets and weights are not tokens: the same text weighted still fits
            engine.check(request_for("tiny-sdxl", prompt=f"(({sdxl_fit}:1.2)) [(:0.9)]", prompt_weighting=True))
            errors = {}
            for model_id, field, text in [("tiny-sdxl", "prompt", sdxl_fit + word),
                                          ("tiny-sdxl", "negative_prompt_2", sdxl_fit + word),
                                          ("tiny-sd", "negative_prompt", sd_fit + word)]:
                with pytest.raises(InvalidRequest) as e:
                    engine.check(request_for(model_id, prompt_weighting=True, **{field: text}))
                errors[field] = e.value
            engine.check(request_for("tiny-sdxl", prompt=sdxl_fit + word))  # unweighted: truncated as before
            return errors
        finally:
            await engine.stop()

    errors = asyncio.run(go())
    assert {f: e.field for f, e in errors.items()} == {f: f for f in errors}
    assert "77" in errors["prompt"].message and "231" in errors["negative_prompt"].message
