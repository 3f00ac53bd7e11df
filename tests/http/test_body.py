"""http/body.py: strict JSON, as every dialect's routes read it."""

import pytest

from pixelserve.errors import InvalidRequest
from pixelserve.http.body import MAX_JSON_DEPTH, is_json, not_blank, parse_json


def test_plain_json_parses():
    assert parse_json(b'{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}


@pytest.mark.parametrize("body, words", [
    (b'{"a": NaN}', "NaN"),
    (b'{"a": 1e400}', "out of range"),
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
    (b'{"a": ', "not valid JSON"),
    (b"\xff", "not valid JSON"),
])
def test_refused(body, words):
    with pytest.raises(InvalidRequest, match=words):
        parse_json(body)


def test_media_types_and_blank_text():
    assert is_json("application/json; charset=utf-8") and is_json("application/problem+json")
    assert not is_json("text/plain") and not is_json(None)
    with pytest.raises(ValueError):
        not_blank(" \t")


def test_enum_like_strings_match_in_either_unicode_form():
    """"Pokémon" with a combining accent (NFD, as some keyboards and macOS file names send it) is the
    same style preset as the precomposed one."""
    import unicodedata

    from pixelserve.dialects.octoai.protocol import ImageGenerationRequest

    decomposed = unicodedata.normalize("NFD", "Pokémon")
    assert decomposed != "Pokémon"
    body = ImageGenerationRequest.model_validate({"prompt": "a cat", "style_preset": decomposed})
    assert body.style_preset == "Pokémon"
