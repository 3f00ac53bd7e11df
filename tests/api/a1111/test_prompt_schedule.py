"""Prompt editing and alternation as a schedule: A1111's own doctests
(``prompt_parser.get_learned_conditioning_prompt_schedules``, 10 steps)."""

import pytest

from pixelserve.dialects.a1111.schedule import schedule


@pytest.mark.parametrize("text, want", [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", [(i, "a" if i % 2 else "(b:1.1)") for i in range(1, 11)]),
    ("[fe|]male", [(i, "female" if i % 2 else "male") for i in range(1, 11)]),
    ("[fe|||]male", [(1, "female"), (4, "male"), (5, "female"), (8, "male"), (9, "female"), (10, "male")]),
    ("a [dog::4] (cat:1.2) [x]", [(4, "a dog (cat:1.2) [x]"), (10, "a  (cat:1.2) [x]")]),
    ("a [b:c]", [(10, "a [b:c]")]),  # no number: text, as A1111's grammar leaves it
])
def test_a1111_doctests(text, want):
    assert schedule(text, 10) == want
