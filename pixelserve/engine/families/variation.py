"""A1111's variation seeds (``subseed`` / ``subseed_strength``): each image's starting noise is its
seed's noise slerped towards its subseed's noise by the strength, handed to the pipeline as
``latents`` (txt2img only). At strength 0 nothing is passed: the image is the seed's own.

The noise is drawn the way diffusers' ``randn_tensor`` draws it for a list of generators (one
(1, C, h, w) tensor per image, on the generator's device), so the seed's half matches what the
pipeline would have drawn itself. The slerp runs over each image's whole noise vector.
"""

from __future__ import annotations

from typing import Any

from pixelserve.core.request import GenerationRequest

#: Noise vectors closer than this (cosine) are blended linearly: slerp is ill-conditioned there (A1111 too).
LINEAR_ABOVE = 0.9995


def slerp(t: float, low: Any, high: Any) -> Any:
    """Spherical interpolation from ``low`` (t=0) to ``high`` (t=1) of two same-shaped tensors."""
    import torch

    a, b = low.flatten().float(), high.flatten().float()
    dot = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    if dot > LINEAR_ABOVE:
        out = (1 - t) * a + t * b
    else:
        omega = torch.acos(dot)
        out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return out.reshape(low.shape).to(low.dtype)


def pipeline_kwargs(pipe: Any, request: GenerationRequest, device: str) -> dict[str, Any]:
    """``{"latents": ...}`` for a txt2img request with variation seeds, else nothing."""
    if not request.subseed_strength or request.task != "txt2img" or not request.subseeds:
        return {}
    import torch

    scale = getattr(pipe, "vae_scale_factor", 8)
    shape = (1, pipe.unet.config.in_channels, request.height // scale, request.width // scale)
    gen_device = "cpu" if device == "mps" else device
    dtype = pipe.unet.dtype

    def noise(seed: int) -> Any:
        generator = torch.Generator(gen_device).manual_seed(int(seed))
        return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype)

    rows = [slerp(request.subseed_strength, noise(s), noise(sub)) for s, sub in zip(request.seeds, request.subseeds)]
    return {"latents": torch.cat(rows).to(device)}
