"""A1111's infotext: the "parameters" text an image carries, written and read back.

Format (``processing.create_infotext``)::

    a cat
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 123, Size: 512x512, Model: sd15

A value with ``,``, ``:`` or a newline is JSON-quoted; keys whose value is None are left out.
``parse`` is ``infotext_utils.parse_generation_parameters`` (png-info's ``parameters``: values are
strings, ``Size`` splits into ``Size-1`` / ``Size-2``, and the defaults A1111 adds for missing keys).
``request_fields`` maps a parsed infotext onto txt2img/img2img request fields (the ``infotext``
request field fills every field the request did not set).
"""

from __future__ import annotations

import json
import re
from typing import Any

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")

#: What A1111 fills in when an infotext lacks the key (the subset of its defaults meaningful here).
PARSE_DEFAULTS: dict[str, Any] = {
    "Clip skip": "1", "Hires resize-1": 0, "Hires resize-2": 0, "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler", "Hires checkpoint": "Use same checkpoint", "Hires prompt": "",
    "Hires negative prompt": "", "RNG": "GPU", "Schedule type": "Automatic",
}


def quote(text: Any) -> str:
    text = str(text)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def number(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (A1111 writes floats as Python does; whole ones without ".0" here as there)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def create(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """The infotext of one image: prompt, optional negative line, then ``key: value`` pairs in order."""
    text = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{text}".strip()


def parse(text: str, *, defaults: bool = True) -> dict[str, Any]:
    """An infotext -> A1111's parsed parameters ({"Prompt", "Negative prompt", "Steps": "20", ...});
    ``defaults``: add A1111's values for missing keys, as png-info answers."""
    res: dict[str, Any] = {}
    prompt, negative, done_with_prompt = "", "", False
    *lines, last = (text or "").strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:  # no parameters line: it is part of the prompt
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"], res["Negative prompt"] = prompt, negative
    for key, value in RE_PARAM.findall(last):
        value = unquote(value.strip()) if value.strip().startswith('"') else value.strip()
        size = RE_SIZE.match(value)
        if size is not None:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    for key, value in PARSE_DEFAULTS.items() if defaults else ():
        res.setdefault(key, value)
    return res


def _int(v: Any) -> int:
    return int(float(v))


#: Infotext key -> (request field, conversion): what an ``infotext`` in a request fills
#: (A1111 ``infotext_utils`` paste fields of txt2img/img2img).
FIELDS: dict[str, tuple[str, Any]] = {
    "Prompt": ("prompt", str), "Negative prompt": ("negative_prompt", str), "Steps": ("steps", _int),
    "Sampler": ("sampler_name", str), "Schedule type": ("scheduler", str), "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", _int), "Size-1": ("width", _int), "Size-2": ("height", _int),
    "Variation seed": ("subseed", _int), "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", _int), "Seed resize from-2": ("seed_resize_from_h", _int),
    "Denoising strength": ("denoising_strength", float), "Hires upscale": ("hr_scale", float),
    "Hires steps": ("hr_second_pass_steps", _int), "Hires upscaler": ("hr_upscaler", str),
    "Hires resize-1": ("hr_resize_x", _int), "Hires resize-2": ("hr_resize_y", _int),
}
#: Infotext key -> override setting it fills (A1111 ``infotext_to_setting_name_mapping``).
SETTINGS: dict[str, tuple[str, Any]] = {
    "Clip skip": ("CLIP_stop_at_last_layers", _int), "Model": ("sd_model_checkpoint", str),
}


def request_fields(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request fields, override settings) an infotext sets; values that do not convert are left out,
    as A1111's paste does."""
    parsed = parse(text, defaults=False)
    fields: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for table, out in ((FIELDS, fields), (SETTINGS, settings)):
        for key, (name, conv) in table.items():
            if key not in parsed or (key not in ("Prompt", "Negative prompt") and parsed[key] in ("", None)):
                continue
            try:
                out[name] = conv(parsed[key])
            except (TypeError, ValueError):
                continue
    return fields, settings
