"""Textual inversions, loaded for the duration of one request's prompt encoding only.

``load_textual_inversion`` adds tokens to a tokenizer and rows to a text encoder's embedding table.
It is run on a *copy* of the tokenizer, and the enlarged embedding table is swapped in only while
this request's prompts are encoded, then the original table (the very same module) is put back:
the next request sees the tokenizer and text encoder untouched. The copies are cached per set of
embeddings (bounded).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from pixelserve.core.request import TextualInversionRef
from pixelserve.engine.adapters.base import Base, file_key
from pixelserve.errors import InvalidRequest


@dataclass
class Encoder:
    """One text encoder and the tokenizer to use with it for this call."""

    tokenizer: Any
    text_encoder: Any
    #: token id -> the ids it stands for (a multi-vector embedding's extra tokens)
    expansions: dict[int, list[int]] = field(default_factory=dict)


def text_encoders(pipe: Any) -> list[Encoder]:
    pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")]
    return [Encoder(getattr(pipe, t), getattr(pipe, e)) for t, e in pairs
            if getattr(pipe, t, None) is not None and getattr(pipe, e, None) is not None]


#: SDXL embeddings ship one tensor per text encoder under these names.
_SDXL_KEYS = ("clip_l", "clip_g")


def ti_key(refs: tuple[TextualInversionRef, ...]) -> tuple:
    return tuple((file_key(r.path), r.token) for r in refs)


@contextmanager
def textual_inversions(base: Base, refs: tuple[TextualInversionRef, ...]) -> Iterator[list[Encoder]]:
    """The base's encoders with ``refs`` loaded, for the duration of the block only."""
    encoders = text_encoders(base.pipe)
    if not refs:
        yield encoders
        return
    key = ti_key(refs)
    loaded = base.ti_sets.get(key)
    if loaded is None:
        loaded = _load_ti_set(base.pipe, encoders, refs)
        base.ti_sets.put(key, loaded)
    originals = [enc.text_encoder.get_input_embeddings() for enc in encoders]
    try:
        for enc, (tokenizer, table, expansions) in zip(encoders, loaded):
            enc.text_encoder.set_input_embeddings(table)
            enc.tokenizer, enc.expansions = tokenizer, expansions
        yield encoders
    finally:
        for enc, table in zip(encoders, originals):
            enc.text_encoder.set_input_embeddings(table)


def _ti_tensor(state: dict, index: int, n_encoders: int, ref: TextualInversionRef) -> Any:
    if n_encoders == 1:
        if len(state) != 1:
            raise InvalidRequest(f"textual inversion {ref.name!r} holds {len(state)} tensors; an SD embedding "
                                 "holds one", field="textual_inversions")
        return next(iter(state.values()))
    if not all(k in state for k in _SDXL_KEYS):
        raise InvalidRequest(f"textual inversion {ref.name!r} is not an SDXL embedding (needs clip_l and clip_g)",
                             field="textual_inversions")
    return state[_SDXL_KEYS[index]]


def _load_ti_set(pipe: Any, encoders: list[Encoder], refs: tuple[TextualInversionRef, ...]) -> list[tuple]:
    """Per encoder: (tokenizer copy with the tokens, enlarged embedding table, multi-vector expansions)."""
    from safetensors.torch import load_file

    states = [load_file(r.path) for r in refs]
    out = []
    for index, enc in enumerate(encoders):
        tokenizer = copy.deepcopy(enc.tokenizer)
        te = enc.text_encoder
        original, vocab_size = te.get_input_embeddings(), te.config.vocab_size
        expansions: dict[int, list[int]] = {}
        try:
            for ref, state in zip(refs, states):
                tensor = _ti_tensor(state, index, len(encoders), ref)
                if tensor.ndim == 1:
                    tensor = tensor[None]
                try:
                    pipe.load_textual_inversion(tensor, token=ref.token, tokenizer=tokenizer, text_encoder=te)
                except ValueError as e:
                    raise InvalidRequest(f"textual inversion {ref.name!r}: {e}", field="textual_inversions") from e
                tokens = [ref.token] + [f"{ref.token}_{i}" for i in range(1, tensor.shape[0])]
                ids = tokenizer.convert_tokens_to_ids(tokens)
                expansions[ids[0]] = list(ids)
            table = te.get_input_embeddings()
        finally:  # the shared encoder gets its own table back, whatever happened
            te.set_input_embeddings(original)
            te.config.vocab_size = vocab_size
        out.append((tokenizer, table, expansions))
    return out
