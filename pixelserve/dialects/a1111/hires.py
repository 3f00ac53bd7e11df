"""A1111's hires fix (``enable_hr``): the second pass's size, upscaler, steps, sampler and prompts as
core ``Hires`` (the engine runs it: engine/post/hires.py), and its infotext keys.

Upscalers: A1111's "Latent" modes (latent space) and None / Lanczos / Nearest (pixels); ESRGAN-type
upscalers are not built (a 400 naming ``hr_upscaler``).
"""

from __future__ import annotations

from typing import Any

from pixelserve.core.request import Hires
from pixelserve.dialects.a1111 import infotext, prompt, samplers
from pixelserve.dialects.a1111.protocol import Processing, Txt2ImgRequest
from pixelserve.errors import InvalidRequest


#: hr_upscaler names built here -> Hires.resample (engine/post/hires.py). The latent ones are A1111's
#: ``latent_upscale_modes`` (/latent-upscale-modes lists them), the others its pixel upscalers (/upscalers).
LATENT_UPSCALERS = {"Latent": "latent:bilinear", "Latent (antialiased)": "latent:bilinear-aa",
                    "Latent (bicubic)": "latent:bicubic", "Latent (bicubic antialiased)": "latent:bicubic-aa",
                    "Latent (nearest)": "latent:nearest", "Latent (nearest-exact)": "latent:nearest-exact"}
PIXEL_UPSCALERS = {"None": "lanczos", "Lanczos": "lanczos", "Nearest": "nearest"}
HIRES_UPSCALERS = {**LATENT_UPSCALERS, **PIXEL_UPSCALERS}
SAME = (None, "", "Use same sampler", "Use same scheduler", "Use same checkpoint")


def hires_size(body: Txt2ImgRequest) -> tuple[int, int]:
    """The second pass's size (A1111 ``StableDiffusionProcessingTxt2Img.calculate_target_resolution``),
    cut to multiples of 8."""
    w, h, x, y = body.width, body.height, body.hr_resize_x, body.hr_resize_y
    if x == 0 and y == 0:
        if not 1 <= body.hr_scale <= 8:
            raise InvalidRequest("must be 1 to 8", field="hr_scale")
        x, y = int(w * body.hr_scale), int(h * body.hr_scale)
    elif y == 0:
        y = x * h // w
    elif x == 0:
        x = y * w // h
    elif x * h != y * w:  # A1111 crops the upscaled image to another aspect ratio: not built
        raise InvalidRequest(f"{x}x{y} has another aspect ratio than {w}x{h}; send one of hr_resize_x / hr_resize_y "
                             "or hr_scale", field="hr_resize_x")
    return x // 8 * 8, y // 8 * 8


def plan(body: Txt2ImgRequest) -> Hires:
    """enable_hr: a second img2img pass at the larger size (engine/post/hires.py)."""
    upscaler = body.hr_upscaler or "Latent"  # A1111's default (opts.hires_fix_upscaler... "Latent")
    if upscaler not in HIRES_UPSCALERS:
        raise InvalidRequest(f"{upscaler!r} is not an upscaler of this server; use one of "
                             f"{', '.join(HIRES_UPSCALERS)}", field="hr_upscaler")
    if body.hr_checkpoint_name not in SAME:
        raise InvalidRequest("another checkpoint for the second pass is not supported here", field="hr_checkpoint_name")
    scheduler = None
    if body.hr_sampler_name not in SAME or body.hr_scheduler not in SAME:
        name = body.hr_sampler_name if body.hr_sampler_name not in SAME else (body.sampler_name or body.sampler_index)
        scheduler = samplers.resolve(name, None if body.hr_scheduler in SAME else body.hr_scheduler,
                                     field="hr_sampler_name").sampler
    texts = []
    for name in ("hr_prompt", "hr_negative_prompt"):
        text = getattr(body, name)
        parsed = prompt.parse(text, name) if text else None
        if parsed is not None and parsed.loras:
            raise InvalidRequest("<lora:...> tags of the second pass are not supported: put them in prompt", field=name)
        texts.append(parsed.text if parsed is not None else None)
    width, height = hires_size(body)
    return Hires(width=width, height=height, strength=body.denoising_strength,
                 steps=body.hr_second_pass_steps or body.steps, resample=HIRES_UPSCALERS[upscaler],
                 scheduler=scheduler, prompt=texts[0], negative_prompt=texts[1])


def infotext_params(body: Processing) -> dict[str, Any]:
    if not getattr(body, "enable_hr", False):
        return {}
    resize = body.hr_resize_x or body.hr_resize_y
    return {"Denoising strength": infotext.number(body.denoising_strength),
            "Hires upscale": None if resize else infotext.number(body.hr_scale),
            "Hires resize": f"{body.hr_resize_x}x{body.hr_resize_y}" if resize else None,
            "Hires steps": body.hr_second_pass_steps or None, "Hires upscaler": body.hr_upscaler or "Latent",
            "Hires prompt": body.hr_prompt or None, "Hires negative prompt": body.hr_negative_prompt or None}
