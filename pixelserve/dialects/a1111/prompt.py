"""A1111's prompt syntax (spec B.9): what this dialect reads itself before the engine sees the text.

- Extra networks ``<lora:NAME>``, ``<lora:NAME:0.8>``, ``<lora:NAME:te=0.8:unet=0.8>``: taken out of
  the text (as A1111 does) and returned as (name, weight). The engine applies one weight to the
  text encoder and the UNet alike, so a different UNet weight is refused.
- Attention ``(x)``, ``(x:1.3)``, ``[x]`` and escapes are left in the text: the engine parses them
  (``prompt_weighting``: engine/text/weighting.py, A1111's rules) and encodes long prompts in
  75-token chunks as A1111 does. ``BREAK`` is handled there too (a new chunk).
- Prompt editing ``[a:b:when]`` and alternation ``[a|b]`` in ``prompt``: schedule.py (the engine
  switches the text embedding at those steps; sd models).
- Not built here, refused with a 400 naming the field: composable diffusion (``AND``), prompt
  editing and alternation in the negative prompt or a hires prompt, and other extra networks
  (``<hypernet:...>`` ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelserve.errors import InvalidRequest

RE_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")
RE_AND = re.compile(r"\bAND\b")
#: A square bracket group (no nested brackets, not escaped) holding ``:`` (editing) or ``|`` (alternation).
RE_EDIT = re.compile(r"(?<!\\)\[[^\[\]]*(?<!\\):[^\[\]]*(?<!\\)\]")
RE_ALTERNATE = re.compile(r"(?<!\\)\[[^\[\]]*\|[^\[\]]*(?<!\\)\]")


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float


@dataclass(frozen=True)
class Parsed:
    text: str  # the prompt without its extra-network tags
    loras: tuple[LoraTag, ...] = ()


def _number(value: str, field: str, tag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(f"{tag}: {value!r} is not a number", field=field) from None


def _lora(args: str, field: str, tag: str) -> LoraTag:
    """``NAME[:te[:unet[:dyn]]]`` or named ``te=``, ``unet=``, ``dyn=`` (extra_networks_lora.py)."""
    parts = args.split(":")
    name, positional, named = parts[0].strip(), [], {}
    for p in parts[1:]:
        key, eq, value = p.partition("=")
        if eq:
            named[key.strip()] = value.strip()
        else:
            positional.append(p.strip())
    if not name:
        raise InvalidRequest(f"{tag}: a LoRA name is required", field=field)
    te = _number(named.get("te", positional[0] if positional else "1"), field, tag)
    unet_text = named.get("unet", positional[1] if len(positional) > 1 else None)
    unet = te if unet_text is None else _number(unet_text, field, tag)
    if unet != te:
        raise InvalidRequest(f"{tag}: a UNet weight different from the text-encoder weight is not supported here "
                             "(one weight applies to both)", field=field)
    if "dyn" in named or len(positional) > 2:
        raise InvalidRequest(f"{tag}: dyn_dim is not supported here", field=field)
    return LoraTag(name, te)


def parse(text: str, field: str = "prompt", *, extra_networks: bool = True, editing: bool = False) -> Parsed:
    """The prompt's extra networks taken out, and the syntax this server does not build refused.
    ``editing``: prompt editing and alternation are left in (schedule.py reads them: the prompt)."""
    if RE_AND.search(text):
        raise InvalidRequest("AND (composable diffusion) is not supported by this server", field=field)
    if not editing and RE_EDIT.search(RE_EXTRA_NET.sub("", text)):
        raise InvalidRequest(f"prompt editing [from:to:when] is supported in prompt only, not in {field}", field=field)
    if not editing and RE_ALTERNATE.search(text):
        raise InvalidRequest(f"alternation [a|b] is supported in prompt only, not in {field}", field=field)
    loras: list[LoraTag] = []

    def take(m: re.Match) -> str:
        kind, args = m.group(1), m.group(2)
        if not extra_networks:  # disable_extra_networks: A1111 strips the tags and applies nothing
            return ""
        if kind != "lora":
            raise InvalidRequest(f"extra network {m.group(0)!r}: only <lora:...> is supported by this server",
                                 field=field)
        loras.append(_lora(args, field, m.group(0)))
        return ""

    stripped = RE_EXTRA_NET.sub(take, text)
    names = [t.name for t in loras]
    if len(set(names)) != len(names):
        raise InvalidRequest("names the same LoRA twice", field=field)
    return Parsed(stripped, tuple(loras))
