"""A1111's hires fix: each generated image enlarged, then an img2img pass of the same request at the
larger size (its prompt encoding, LoRAs, clip skip and sampler: ``family.run`` as for any img2img
job), with the second pass's own strength, steps and optionally sampler and prompts.

Enlarged in pixels (``lanczos``, ``nearest``) or, as A1111's "Latent" upscalers, in latent space
(``latent:<mode>``): the image is encoded back with the model's VAE (A1111 keeps the first pass's
latents; the VAE round trip stands in for them) and the latents are interpolated to the larger
size; img2img pipelines take 4-channel latents as the init image as they are.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from PIL import Image

from pixelserve.core.request import GenerationRequest, PostProcess
from pixelserve.engine.families.base import Family

RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}
#: latent mode -> (torch interpolate mode, antialias) (A1111 ``shared.latent_upscale_modes``).
LATENT_MODES = {"bilinear": ("bilinear", False), "bilinear-aa": ("bilinear", True), "bicubic": ("bicubic", False),
                "bicubic-aa": ("bicubic", True), "nearest": ("nearest", False), "nearest-exact": ("nearest-exact", False)}


def second_pass(model: Any, family: Family, request: GenerationRequest, images: list[Any],
                cancel: threading.Event | None = None) -> list[Any]:
    hires = request.post.hires
    out = []
    for image, seed in zip(images, request.seeds):
        # 1. Enlarged to the second pass's size, in pixels or in latent space.
        if hires.resample.startswith("latent:"):
            start = latent_resize(model.pipe.vae, image, hires.width, hires.height, hires.resample[7:])
        else:
            start = image.convert("RGB").resize((hires.width, hires.height), RESAMPLE[hires.resample])
        # 2. img2img of the same request at that size, seeded as the first pass was.
        second = request.with_(
            task="img2img", init_image=start, mask_image=None, strength=hires.strength, steps=hires.steps,
            width=hires.width, height=hires.height, seeds=(seed,), num_images=1, post=PostProcess(),
            scheduler=hires.scheduler or request.scheduler, inpaint_full_res=False, outpaint=False,
            prompt_schedule=(),  # prompt editing's steps are the first pass's: the second takes its final text
            prompt=(request.prompt_schedule[-1][1] if request.prompt_schedule else request.prompt)
            if hires.prompt is None else hires.prompt,
            negative_prompt=request.negative_prompt if hires.negative_prompt is None else hires.negative_prompt)
        out.extend(family.run(model, second, cancel=cancel))
    return out


def latent_resize(vae: Any, image: Any, width: int, height: int, mode: str) -> Any:
    """The image's scaled latents (1, C, h/8, w/8), interpolated to width x height / 8."""
    import numpy as np
    import torch

    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0)
    x = pixels.permute(2, 0, 1)[None].to(vae.device)
    with torch.inference_mode():
        if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
            # the fp16 VAE overflows when encoding (SDXL): a float32 copy of the encoder, for this call only
            encoder, quant = copy.deepcopy(vae.encoder).float(), copy.deepcopy(getattr(vae, "quant_conv", None))
            moments = encoder(x)
            moments = quant.float()(moments) if quant is not None else moments
            latents = moments.chunk(2, dim=1)[0].to(vae.dtype)
        else:
            latents = vae.encode(x.to(vae.dtype)).latent_dist.mode()
        latents = latents * vae.config.scaling_factor
        interp, antialias = LATENT_MODES[mode]
        size = (height // 8, width // 8)
        return torch.nn.functional.interpolate(latents.float(), size=size, mode=interp,
                                               antialias=antialias).to(vae.dtype)
