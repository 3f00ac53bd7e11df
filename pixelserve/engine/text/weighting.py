"""The "(word:1.5)" weighting syntax and token counts against a family's limit.

Kept apart from prompts.py (which builds the embeddings with torch) so that the model checks
(engine/checks.py) run in an API process that has no torch: with the process or Ray engine too.
"""

from __future__ import annotations

import re
from typing import Any

from pixelserve.core.request import GenerationRequest
from pixelserve.errors import InvalidRequest

#: 77-token chunks a weighted prompt may fill, per family.
MAX_CHUNKS = {"sd": 3, "sdxl": 1}
CHUNK_TEXT_TOKENS = 75  # 77 minus the start and end markers
BARE_BRACKET = 1.1

#: A1111's chunk break: the text after it starts a new 77-token chunk (``prompt_parser.re_break``).
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*")

# -- weighting syntax --------------------------------------------------------------------------
_TOKENS = re.compile(r"\\[()\[\]\\]|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|:|\\")


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """``(a (b:1.5) c:0.8)`` -> [("a ", 0.8), ("b", 1.2), (" c", 0.8)]; adjacent equal weights merged."""
    pieces: list[list] = []  # [text, weight]
    round_open: list[int] = []  # index in pieces where each open "(" starts
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for m in _TOKENS.finditer(text):
        token, weight = m.group(0), m.group(1)
        if token.startswith("\\") and len(token) == 2:
            pieces.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            scale(round_open.pop(), BARE_BRACKET)
        elif token == "]" and square_open:
            scale(square_open.pop(), 1 / BARE_BRACKET)
        else:  # text, or a stray ":", ")" or "]"
            pieces.append([token, 1.0])
    for start in round_open:  # unclosed brackets run to the end
        scale(start, BARE_BRACKET)
    for start in square_open:
        scale(start, 1 / BARE_BRACKET)
    merged: list[tuple[str, float]] = []
    for piece_text, w in pieces:
        if merged and merged[-1][1] == w:
            merged[-1] = (merged[-1][0] + piece_text, w)
        else:
            merged.append((piece_text, w))
    return [(t, w) for t, w in merged if t] or [("", 1.0)]


def plain_text(text: str) -> str:
    """The prompt without its weighting syntax."""
    return "".join(t for t, _ in parse_weighted(text))


def break_parts(text: str, breaks: bool) -> list[str]:
    """The texts encoded as chunks of their own: split at each BREAK when ``breaks`` is on."""
    return RE_BREAK.split(text) if breaks and RE_BREAK.search(text) else [text]


def count_tokens(tokenizer: Any, text: str, weighted: bool) -> int:
    """Text tokens of ``text`` (no start/end markers; weighting syntax not counted)."""
    fragments = [t for t, _ in parse_weighted(text)] if weighted else [text]
    ids = tokenizer([f for f in fragments if f], add_special_tokens=False)["input_ids"] if any(fragments) else []
    return sum(len(i) for i in ids)


def check_token_limits(request: GenerationRequest, family: str, tokenizers: list[Any]) -> None:
    """Raise InvalidRequest naming the field whose weighted prompt is over the family's limit.

    Only the caller's own words count against the limit: a style preset's template words
    (``request.style``) go into further 77-token chunks where the family encodes long prompts
    (SD); where it cannot (SDXL, one chunk), the error names ``style_preset``."""
    chunks = MAX_CHUNKS.get(family)
    if not request.prompt_weighting or chunks is None or not tokenizers:
        return
    limit = CHUNK_TEXT_TOKENS * chunks
    style = request.style
    fields = [("prompt", request.prompt, 0, True), ("negative_prompt", request.negative_prompt, 0, False)]
    fields += [("prompt", text, 0, True) for _, text in request.prompt_schedule[1:]]  # A1111 prompt editing
    if family == "sdxl" and len(tokenizers) > 1:
        fields += [("prompt_2", request.prompt_2, 1, True), ("negative_prompt_2", request.negative_prompt_2, 1, None)]
    for name, text, index, styled in fields:
        if not text:
            continue
        own = text
        if style is not None and styled is not None:
            own = style.callers_prompt(text) if styled else style.callers_negative(text)
        parts = break_parts(own, request.prompt_break)
        if len(parts) > 1:  # each part fills whole chunks of its own
            used = sum(max(1, -(-count_tokens(tokenizers[index], p, weighted=True) // CHUNK_TEXT_TOKENS))
                       for p in parts)
            if used > chunks:
                raise InvalidRequest(f"BREAK makes {used} chunks of 75 tokens; {family} models take at most {chunks} "
                                     "here", field=name)
        n = count_tokens(tokenizers[index], own, weighted=True)
        if n > limit:
            raise InvalidRequest(
                f"is {n} tokens long (weighting syntax not counted); {family} models take at most {limit} "
                f"({77 * chunks} tokens with the start and end markers of each 77-token chunk)", field=name)
        if own is text or family != "sdxl":  # SD encodes the template's words in further chunks
            continue
        total = count_tokens(tokenizers[index], text, weighted=True)
        if total > limit:
            raise InvalidRequest(
                f"the {style.name!r} preset adds {total - n} tokens to {name}'s {n}: {total}, over the {limit} an "
                f"{family} model takes in its one 77-token chunk; shorten {name} by {total - limit} tokens or send "
                "no style_preset", field="style_preset")
