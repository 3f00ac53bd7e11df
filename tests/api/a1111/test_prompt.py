"""A1111's prompt syntax: the spec's attention doctest (parsed by the engine's weighting parser, which the
A1111 dialect turns on), BREAK, and the extra-network tags the dialect takes out itself."""

import pytest

from pixelserve.dialects.a1111 import prompt
from pixelserve.engine.text.weighting import break_parts, parse_weighted
from pixelserve.errors import InvalidRequest


def test_the_spec_doctest():
    got = parse_weighted("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    want = [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
            (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1)]
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [round(w, 4) for _, w in got] == [round(w, 4) for _, w in want]


def test_escapes_and_unbalanced_brackets():
    assert parse_weighted(r"\(literal\) (open") == [("(literal) ", 1.0), ("open", 1.1)]


def test_break_splits_only_on_the_word():
    assert break_parts("a cat BREAK a dog BREAK", True) == ["a cat", "a dog", ""]
    assert break_parts("a BREAKING news", True) == ["a BREAKING news"]
    assert break_parts("a cat BREAK a dog", False) == ["a cat BREAK a dog"]


@pytest.mark.parametrize("text, loras, rest", [
    ("a cat <lora:ink>", [("ink", 1.0)], "a cat "),
    ("<lora:ink:0.6> a cat <lora:pen:te=0.3:unet=0.3>", [("ink", 0.6), ("pen", 0.3)], " a cat "),
    ("<lora:ink:0.5:0.5>, (x:1.2)", [("ink", 0.5)], ", (x:1.2)"),
])
def test_lora_tags_are_taken_out(text, loras, rest):
    parsed = prompt.parse(text)
    assert [(t.name, t.weight) for t in parsed.loras] == loras and parsed.text == rest


def test_disable_extra_networks_strips_the_tags():
    parsed = prompt.parse("a cat <lora:ink:0.6>", extra_networks=False)
    assert parsed.text == "a cat " and parsed.loras == ()


@pytest.mark.parametrize("text, words", [
    ("a AND b", "AND"), ("[cat:dog:0.5]", "prompt editing"), ("[cat:4]", "prompt editing"),
    ("[cat|dog]", "alternation"), ("<hypernet:x:1>", "only <lora:...>"), ("<lora:x:abc>", "not a number"),
    ("<lora:x:1:1:4>", "dyn_dim"), ("<lora::1>", "name is required"), ("<lora:a><lora:a:2>", "twice"),
])
def test_what_is_not_built_is_a_400_naming_the_field(text, words):
    with pytest.raises(InvalidRequest) as e:
        prompt.parse(text, "negative_prompt")
    assert e.value.field == "negative_prompt" and words in e.value.message


def test_plain_brackets_and_weights_are_not_editing():
    for text in ("[dim] (bright:1.3) \\[x:y\\]", "a (b [c] :0.9)", "ANDROID"):
        assert prompt.parse(text).text == text
