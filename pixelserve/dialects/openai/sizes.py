"""OpenAI ``size``, ``quality`` and ``style`` -> pixelserve's size, steps and guidance; the prompt's
CLIP token count for ``usage``. Pure functions and the tables they read (documented in README.md)."""

from __future__ import annotations

import math
import re

from pixelserve.core.request import StyleTemplate
from pixelserve.errors import InvalidRequest

#: Per family: the sizes it was trained at (the first is ``size=auto``). A requested size smaller
#: than GOOD_SIDE on its short side is drawn at the native size of the nearest aspect ratio and then
#: resized (centre-cropped to the aspect) to the size asked for: SDXL draws 256x256 as noise-like
#: fragments, at 1024x1024 it draws the picture. unCLIP always draws at its own size (the engine
#: resizes), so it has no GOOD_SIDE. Random-weight demo models draw at the size asked for.
NATIVE = {
    "sdxl": ((1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344),
             (1536, 640), (640, 1536)),
    "sd": ((512, 512), (576, 448), (448, 576), (768, 512), (512, 768), (640, 384), (384, 640)),
    "unclip": ((256, 256),),
}
GOOD_SIDE = {"sdxl": 640, "sd": 384}
MIN_SIDE = 64  # core.validate's limit (multiples of 8 from 64)

#: quality -> denoising steps. OpenAI prices quality by output tokens; here it buys steps.
STEPS = {"low": 12, "medium": 25, "auto": 25, "standard": 25, "high": 40, "hd": 40, "xhigh": 50, "max": 60}
#: quality as answered (``ImagesResponse.quality`` is low | medium | high | xhigh | max).
ANSWERED_QUALITY = {"auto": "medium", "standard": "medium", "hd": "high"}

#: style -> (guidance scale, prompt template). No style: guidance 7.5 and the prompt as sent.
DEFAULT_GUIDANCE = 7.5
VIVID = StyleTemplate("vivid", "{prompt}, vivid colors, dramatic lighting, hyper-detailed")
STYLES = {"vivid": (9.0, VIVID), "natural": (5.0, None)}


def parse_size(size: str, max_pixels: int) -> tuple[int, int]:
    """``WxH`` (protocol checked the shape) within the server's limits, else 400 ``param: size``."""
    w, _, h = size.partition("x")
    width, height = int(w), int(h)
    if width % 8 or height % 8 or min(width, height) < MIN_SIDE or width * height > max_pixels:
        raise InvalidRequest(f"{size} is not a size this server draws: width and height must be multiples of 8 "
                             f"from {MIN_SIDE}, {max_pixels} pixels at most (or auto)", field="size")
    return width, height


def plan_size(size: str | None, family: str, demo: bool, max_pixels: int,
              default: str = "auto") -> tuple[tuple[int, int], tuple[int, int]]:
    """(size generated at, size answered)."""
    size = size or default
    wanted = NATIVE[family][0] if size == "auto" else parse_size(size, max_pixels)
    good = GOOD_SIDE.get(family)
    if demo or good is None or min(wanted) >= good:
        return wanted, wanted
    native = nearest_native(family, *wanted)
    if native[0] * native[1] > max_pixels:
        return wanted, wanted
    return native, wanted


def nearest_native(family: str, width: int, height: int) -> tuple[int, int]:
    aspect = math.log(width / height)
    return min(NATIVE[family], key=lambda s: abs(math.log(s[0] / s[1]) - aspect))


def steps_for(quality: str | None) -> int:
    return STEPS[quality or "auto"]


def answered_quality(quality: str | None) -> str:
    quality = quality or "auto"
    return ANSWERED_QUALITY.get(quality, quality)


def styled(prompt: str, style: str | None) -> tuple[str, float, StyleTemplate | None]:
    """(prompt with the style's words, guidance scale, the template for the token limits)."""
    if style is None:
        return prompt, DEFAULT_GUIDANCE, None
    guidance, template = STYLES[style]
    if template is None:
        return prompt, guidance, None
    return template.template.replace("{prompt}", prompt), guidance, template


# CLIP's pre-tokenizer (openai/CLIP simple_tokenizer.py) with stdlib classes for \p{L} and \p{N}.
_CLIP_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


def clip_tokens(prompt: str) -> int:
    """The prompt's CLIP token count as the text encoder sees it, start and end tokens included.

    Counted without the tokenizer (the API process loads no model): one token per piece of CLIP's
    own word split (a word, a digit, a run of punctuation). Exact for prompts of common words; a rare
    word that CLIP's BPE cuts into several pieces counts as one, so this is a lower bound."""
    return len(_CLIP_WORDS.findall(prompt.lower())) + 2
