"""A1111's prompt editing ``[from:to:when]`` / ``[to:when]`` / ``[from::when]`` and alternation
``[a|b|c]`` as a schedule: (last step, prompt text) pairs, the text the prompt has up to that step
(``prompt_parser.get_learned_conditioning_prompt_schedules``, v1.6+ scheduling). The engine switches
the text embedding at those steps (engine/families/schedule.py).

``when`` with a "." is a fraction of the steps, else a step number. A bracket that is neither (an
emphasis ``[x]``, or ``[a:b]``) stays text, as A1111's grammar leaves a prompt it cannot parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*")


@dataclass
class _Sched:
    before: list  # nodes (empty: nothing before)
    after: list
    when: str


@dataclass
class _Alt:
    options: list  # a list of node lists


def _seq(s: str, i: int, stops: str) -> tuple[list, int]:
    """Nodes (text, _Sched, _Alt, or (bracket, nodes, closed) for emphasis) up to a stop character or the end."""
    nodes: list = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            nodes.append("".join(buf))
            buf.clear()

    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            buf.append(s[i:i + 2])
            i += 2
        elif c in stops:
            break
        elif c in "([":
            flush()
            node, j = _bracket(s, i) if c == "[" else (None, i)
            if node is not None:
                nodes.append(node)
                i = j
                continue
            # emphasis "(...)" or "[...]": its ":" is a weight or text, not a schedule's separator
            close = ")" if c == "(" else "]"
            inner, i = _seq(s, i + 1, close)
            closed = i < len(s)
            nodes.append((c, inner, closed))
            i += 1 if closed else 0
        else:
            buf.append(c)
            i += 1
    flush()
    return nodes, i


def _text(nodes: list) -> str:
    return "".join(_render(nodes, None))


def _bracket(s: str, i: int):
    """A schedule or an alternation starting at s[i] == "[", with the index after its "]"; else None."""
    parts, seps, j = [], [], i + 1
    while True:
        nodes, j = _seq(s, j, ":|]")
        parts.append(nodes)
        if j >= len(s):
            return None, i
        if s[j] == "]":
            j += 1
            break
        seps.append(s[j])
        j += 1
    if seps and all(x == "|" for x in seps):
        return _Alt(parts), j
    if seps in ([":"], [":", ":"]) and NUMBER.fullmatch(_text(parts[-1]) or "x"):
        when = _text(parts[-1]).strip()
        before, after = ([], parts[0]) if len(parts) == 2 else (parts[0], parts[1])
        return _Sched(before, after, when), j
    return None, i


def _when(value: str, steps: int) -> int:
    v = float(value)
    return min(steps, int(v * steps if "." in value else v))


def _steps(nodes: list, steps: int, out: set[int]) -> None:
    for n in nodes:
        if isinstance(n, _Sched):
            at = _when(n.when, steps)
            if at >= 1:
                out.add(at)
            _steps(n.before, steps, out)
            _steps(n.after, steps, out)
        elif isinstance(n, _Alt):
            out.update(range(1, steps + 1))
            for option in n.options:
                _steps(option, steps, out)
        elif isinstance(n, tuple):
            _steps(n[1], steps, out)


def _render(nodes: list, step: int | None, steps: int = 1):
    for n in nodes:
        if isinstance(n, str):
            yield n
        elif isinstance(n, tuple):
            yield n[0]
            yield from _render(n[1], step, steps)
            if n[2]:
                yield ")" if n[0] == "(" else "]"
        elif isinstance(n, _Sched):
            yield from _render(n.before if step <= _when(n.when, steps) else n.after, step, steps)
        else:
            yield from _render(n.options[(step - 1) % len(n.options)], step, steps)


def schedule(text: str, steps: int) -> list[tuple[int, str]]:
    """[(last step, text up to it)], in step order; one pair when the prompt has no editing."""
    nodes, _ = _seq(text, 0, "")
    boundaries: set[int] = set()
    _steps(nodes, steps, boundaries)
    out: list[tuple[int, str]] = []
    for end in sorted(boundaries | {steps}):
        rendered = "".join(_render(nodes, end, steps))
        if out and out[-1][1] == rendered:
            out[-1] = (end, rendered)
        else:
            out.append((end, rendered))
    return out
