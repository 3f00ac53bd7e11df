"""Exact speed-ups applied to a loaded model, switchable in settings.

- SDPA attention: diffusers' default attention processor on torch 2 already uses
  ``scaled_dot_product_attention``; nothing to switch on.
- channels_last memory format for the UNet and VAE on CUDA (faster convolutions there; on CPU it
  measured slower for the tiny models, so it is left off).
- ``torch.compile`` of the UNet and the VAE decoder (CPU and CUDA), with inductor's persistent
  cache kept in the data dir so a restart reuses the compiled kernels instead of compiling again.
  Output equals eager within float tolerance (tests/engine/test_optimize.py states it).

VAE tiling above a pixel threshold: decoding a large image in tiles bounds the decoder's peak
memory (the tiles are blended, so it changes the image slightly: off below the threshold).

Opt-in approximations (changing the image: FP8 linear layers, step caching, a tiny preview VAE)
are not here: they are not implemented yet and nothing turns them on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Optimizations:
    compile: bool = False  # torch.compile UNet + VAE decoder (slow first start, faster jobs)
    compile_mode: str | None = None  # torch.compile mode: None (default), "max-autotune", ...
    dynamic: bool | None = None  # dynamic shapes: one graph for every resolution (None: torch decides)
    channels_last: bool = True  # CUDA only


def use_compile_cache(directory: Path) -> None:
    """Point inductor's on-disk caches (FX graphs, kernels) at ``directory`` unless already set."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(directory))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")


def apply(pipe: Any, device: str, opts: Optimizations) -> Any:
    """Optimise ``pipe`` in place (its modules are shared by every task pipeline built from it)."""
    cuda = device.startswith("cuda")
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        if cuda and opts.channels_last:
            module.to(memory_format=torch.channels_last)
        if opts.compile:
            setattr(pipe, name, torch.compile(module, mode=opts.compile_mode, dynamic=opts.dynamic))
            pipe.register_modules(**{name: getattr(pipe, name)})
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if cuda and opts.channels_last:
            vae.to(memory_format=torch.channels_last)
        if opts.compile:
            vae.decoder = torch.compile(vae.decoder, mode=opts.compile_mode, dynamic=opts.dynamic)
    return pipe


def vae_tiling(pipe: Any, width: int, height: int, threshold_pixels: int) -> None:
    """Tile the VAE for this call when the image is over ``threshold_pixels`` (0: never).

    The VAE is shared by every task pipeline of the model, but one device runs one call at a
    time (engine/local.py), so setting it per call is safe.
    """
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return
    if threshold_pixels and width * height > threshold_pixels:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
