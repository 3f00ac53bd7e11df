"""Prompt text -> what the pipelines take: weighting syntax, long prompts, clip skip, embeddings cache.

Two paths:

- *plain* (``prompt_weighting`` off, no textual inversions, no ``clip_skip``): the prompts go to
  the pipeline as text (``prompt``, ``negative_prompt``, SDXL ``prompt_2`` / ``negative_prompt_2``);
  diffusers encodes them, truncated at 77 tokens. This is exactly what pixelserve always did.
- *embeddings* (``prompt_weighting`` on, textual inversions, or ``clip_skip``): prompts are encoded here with
  compel's ``EmbeddingsProvider`` and handed over as ``prompt_embeds`` / ``negative_prompt_embeds``
  (SDXL: plus the pooled ones). compel does the tokenizing, the 77-token chunking of long prompts
  (each chunk with its own start/end markers, as A1111 does), the weighting (a weight above 1
  pushes a token's embedding away from the empty prompt's, one below 1 blends towards the prompt
  without it) and the multi-vector expansion of textual inversion tokens.

Weighting syntax (OctoAI's documented form, which is A1111's): ``(A tall (beautiful:1.5) woman:1.0)``;
a token's weight is the product of the weights of all brackets around it. As in A1111, a bare
``(text)`` multiplies by 1.1 and ``[text]`` divides by 1.1 (OctoAI's page does not say; A1111 is the
syntax it copies), ``\\(`` is a literal bracket, an unclosed bracket runs to the end. Brackets,
colons and weights are not tokens. The parser is written here by hand: compel reads its own syntax
(``(word)1.5``, ``word++``, ``.and()``, ``.blend()``), in which ordinary prompt text such as "C++"
or "a.and(b)" would change meaning; no maintained library parses A1111's syntax into fragments.

``clip_skip`` has diffusers' meaning (OctoAI served diffusers pipelines): the number of final CLIP
layers skipped; 1 takes the penultimate layer's output (A1111's "Clip skip: 2"). SD 1.x applies the
final layer norm to that layer, SDXL does not (as diffusers' ``encode_prompt``).

Limits (``LocalEngine.check``, weighted prompts only): SDXL one 77-token chunk (75 text tokens
plus start and end), SD 1.x three (231 tokens, 225 of text). Karlo and Studio do not set
``prompt_weighting``: their prompts keep the plain path and its truncation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from compel.embeddings_provider import (BaseTextualInversionManager, EmbeddingsProvider, ReturnedEmbeddingsType,
                                        SplitLongTextMode)

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.text.weighting import break_parts, parse_weighted, plain_text
from pixelserve.engine.adapters import textual_inversion

# -- what the pipeline gets --------------------------------------------------------------------
@dataclass
class PromptLists:
    """Per-image texts of one pipeline call (a stacked batch has one entry per image)."""

    prompt: list[str]
    negative: list[str]
    prompt_2: list[str | None]
    negative_2: list[str | None]

    @classmethod
    def of(cls, requests: list[GenerationRequest]) -> "PromptLists":
        rows = [(r.prompt, r.negative_prompt or "", r.prompt_2, r.negative_prompt_2) for r in requests for _ in r.seeds]
        return cls(*map(list, zip(*rows)))


def pipeline_kwargs(base: Any, family: str, request: GenerationRequest, texts: PromptLists,
                    adapter_key: tuple = ()) -> dict[str, Any]:
    """The prompt arguments of this call's pipeline (text, or embeddings; see the module doc)."""
    if not (request.prompt_weighting or request.textual_inversions or request.clip_skip):
        kwargs: dict[str, Any] = {"prompt": texts.prompt, "negative_prompt": texts.negative}
        if family == "sdxl" and any(p is not None for p in texts.prompt_2 + texts.negative_2):
            kwargs["prompt_2"] = [p2 if p2 is not None else p for p, p2 in zip(texts.prompt, texts.prompt_2)]
            kwargs["negative_prompt_2"] = [n2 if n2 is not None else n for n, n2 in zip(texts.negative, texts.negative_2)]
        return kwargs
    return _Embedder(base, family, request, adapter_key).kwargs(texts)


def refiner_texts(request: GenerationRequest, texts: PromptLists) -> dict[str, Any]:
    """The SDXL refiner's prompts: it has only the second text encoder, so the ``*_2`` texts, as plain text."""
    clean = plain_text if request.prompt_weighting else (lambda t: t)
    return {
        "prompt": [clean(p2 if p2 is not None else p) for p, p2 in zip(texts.prompt, texts.prompt_2)],
        "negative_prompt": [clean(n2 if n2 is not None else n) for n, n2 in zip(texts.negative, texts.negative_2)],
    }


class _Expander(BaseTextualInversionManager):
    """compel's hook for multi-vector textual inversions: one token id -> the ids of all its vectors."""

    def __init__(self, expansions: dict[int, list[int]]):
        self.expansions = expansions

    def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
        return [t for i in token_ids for t in self.expansions.get(i, [i])]


class _Provider(EmbeddingsProvider):
    """compel's provider, reading the hidden layer ``clip_skip`` asks for.

    compel offers the last or the penultimate layer only; diffusers' ``clip_skip`` counts any number
    of skipped layers, so the one method that picks the layer is replaced (pinned compel version).
    """

    def __init__(self, encoder: Any, *, layer: int, normalize: bool, truncate: bool):
        super().__init__(
            tokenizer=encoder.tokenizer, text_encoder=encoder.text_encoder,
            textual_inversion_manager=_Expander(encoder.expansions) if encoder.expansions else None,
            truncate=truncate, split_long_text_mode=SplitLongTextMode.BRUTAL,  # exact 77-token chunks
            returned_embeddings_type=ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NORMALIZED,
            device=encoder.text_encoder.device,
        )
        self.layer, self.normalize = layer, normalize

    def _encode_token_ids_to_embeddings(self, token_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        out = self.text_encoder(token_ids, attention_mask, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states[self.layer]
        if not self.normalize:
            return hidden
        # transformers 5 flattened CLIPTextModel (no .text_model), which diffusers' own SD clip_skip
        # path still reads: one reason clip_skip always takes the embeddings path here.
        return getattr(self.text_encoder, "text_model", self.text_encoder).final_layer_norm(hidden)


class _Embedder:
    """Encodes one call's texts through the base's text encoders, remembering what it encoded."""

    def __init__(self, base: Any, family: str, request: GenerationRequest, adapter_key: tuple):
        self.base, self.family, self.request = base, family, request
        self.weighted = request.prompt_weighting
        self.key = (base.label, self.weighted, self.weighted and request.prompt_break, request.clip_skip or 0,
                    textual_inversion.ti_key(request.textual_inversions), adapter_key)
        self.providers: list[_Provider] | None = None

    def kwargs(self, texts: PromptLists) -> dict[str, Any]:
        wanted = self._wanted(texts)
        missing = [w for w in wanted if (self.key, *w) not in self.base.embeddings]
        if missing:
            with textual_inversion.textual_inversions(self.base, self.request.textual_inversions) as encoders:
                self.providers = [self._provider(enc, i) for i, enc in enumerate(encoders)]
                with torch.inference_mode():
                    for role, text in missing:
                        self.base.embeddings.put((self.key, role, text), self._encode(role, text))
        get = {w: self.base.embeddings.get((self.key, *w)) for w in wanted}
        if self.family == "sdxl":
            return self._sdxl(texts, get)
        pos = [get[("sd", t)] for t in texts.prompt]
        neg = [get[("sd", t)] for t in texts.negative]
        pos, neg = _pad_to_same_length(pos + neg, get[("sd", "")], len(pos))
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg}

    def _wanted(self, texts: PromptLists) -> list[tuple[str, str]]:
        if self.family != "sdxl":
            return sorted({("sd", t) for t in texts.prompt + texts.negative} | {("sd", "")})
        firsts = set(texts.prompt + texts.negative)
        seconds = {p2 if p2 is not None else p for p, p2 in zip(texts.prompt, texts.prompt_2)}
        seconds |= {n2 if n2 is not None else n for n, n2 in zip(texts.negative, texts.negative_2)}
        return sorted({("te1", t) for t in firsts} | {("te2", t) for t in seconds})

    def _provider(self, encoder: Any, index: int) -> _Provider:
        skip = self.request.clip_skip or 0
        if self.family == "sdxl":  # the penultimate layer, unnormalised, unless more are skipped
            return _Provider(encoder, layer=-(skip + 2), normalize=False, truncate=True)
        return _Provider(encoder, layer=-(skip + 1), normalize=True, truncate=not self.weighted)

    def _fragments(self, text: str) -> tuple[list[str], list[float]]:
        pairs = parse_weighted(text) if self.weighted else [(text, 1.0)]
        return [t for t, _ in pairs], [w for _, w in pairs]

    def _encode(self, role: str, text: str) -> Any:
        parts = break_parts(text, self.weighted and self.request.prompt_break)
        if len(parts) > 1 and role == "sd":  # A1111's BREAK: each part padded to whole chunks of its own
            return torch.cat([self._encode(role, part) for part in parts], dim=1)
        provider = self.providers[1 if role == "te2" else 0]
        fragments, weights = self._fragments(text)
        embeds = provider.get_embeddings_for_weighted_prompt_fragments(
            [fragments], [weights], device=provider.device)
        if role != "te2":
            return embeds
        plain = "".join(fragments)
        return embeds, provider.get_pooled_embeddings([plain], device=provider.device)

    def _sdxl(self, texts: PromptLists, get: dict) -> dict[str, Any]:
        def side(firsts: list[str], seconds: list[str | None]):
            embeds, pooled = [], []
            for first, second in zip(firsts, seconds):
                e2, p2 = get[("te2", second if second is not None else first)]
                embeds.append(torch.cat([get[("te1", first)], e2], dim=-1))
                pooled.append(p2)
            return torch.cat(embeds), torch.cat(pooled)

        pos, pooled = side(texts.prompt, texts.prompt_2)
        neg, neg_pooled = side(texts.negative, texts.negative_2)
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg,
                "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": neg_pooled}


def _pad_to_same_length(embeds: list[torch.Tensor], empty: torch.Tensor, n_positive: int):
    """Long prompts have more 77-token chunks: pad every embedding with empty-prompt chunks to the longest."""
    longest = max(e.shape[1] for e in embeds)
    padded = []
    for e in embeds:
        missing = (longest - e.shape[1]) // empty.shape[1]
        padded.append(torch.cat([e] + [empty] * missing, dim=1) if missing else e)
    return torch.cat(padded[:n_positive]), torch.cat(padded[n_positive:])
