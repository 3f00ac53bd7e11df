"""A1111's variation seeds (``subseed`` / ``subseed_strength``): each image's starting noise is its
seed's noise slerped towards its subseed's noise by the strength, handed to the pipeline as
``latents`` (txt2img only). At strength 0 nothing is passed: the image is the seed's own. With
``seed_resize_from`` the noise is drawn at that size and centred in the image's (A1111's "resize
seed from": a seed's composition kept at another size).

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
    """``{"latents": ...}`` for a txt2img request with variation seeds or a seed resize, else nothing."""
    variation = bool(request.subseed_strength and request.subseeds)
    if request.task != "txt2img" or not (variation or request.seed_resize_from):
        return {}
    import torch

    scale = getattr(pipe, "vae_scale_factor", 8)
    shape = (1, pipe.unet.config.in_channels, request.height // scale, request.width // scale)
    drawn = shape  # A1111's seed_resize_from: the noise of that size, centred in (or cropped to) this one
    if request.seed_resize_from:
        drawn = (*shape[:2], request.seed_resize_from[1] // scale, request.seed_resize_from[0] // scale)
    gen_device = "cpu" if device == "mps" else device
    dtype = pipe.unet.dtype

    def noise(seed: int, size: tuple = drawn) -> Any:
        generator = torch.Generator(gen_device).manual_seed(int(seed))
        return torch.randn(size, generator=generator, device=gen_device, dtype=dtype)

    rows = []
    for i, seed in enumerate(request.seeds):
        x = noise(seed)
        if variation:
            x = slerp(request.subseed_strength, x, noise(request.subseeds[i]))
        if drawn != shape:
            x = _centred(noise(seed, shape), x)
        rows.append(x)
    return {"latents": torch.cat(rows).to(device)}


def _centred(canvas: Any, noise: Any) -> Any:
    """``noise`` pasted into the middle of ``canvas`` (cropped where larger), as A1111's
    ``create_random_tensors``."""
    dy, dx = (canvas.shape[2] - noise.shape[2]) // 2, (canvas.shape[3] - noise.shape[3]) // 2
    h = noise.shape[2] if dy >= 0 else noise.shape[2] + 2 * dy
    w = noise.shape[3] if dx >= 0 else noise.shape[3] + 2 * dx
    ty, tx, sy, sx = max(dy, 0), max(dx, 0), max(-dy, 0), max(-dx, 0)
    canvas[:, :, ty:ty + h, tx:tx + w] = noise[:, :, sy:sy + h, sx:sx + w]
    return canvas
