"""Speed-ups applied to a loaded model, switchable in settings.

Exact ones (the image equals the eager pipeline's within float tolerance; tests say how close):
- SDPA attention: diffusers' default attention processor on torch 2 already uses
  ``scaled_dot_product_attention``; nothing to switch on.
- channels_last memory format for the UNet and VAE (faster convolutions on CUDA; slower on a CPU).
- fused QKV projections (``fuse_qkv``): one matmul for query, key and value instead of three. The
  fused weights are a copy, so LoRA or textual-inversion weights loaded into ``to_q``/``to_k``/``to_v``
  afterwards would not reach it; and on a CPU it measured slower.
- host memory kept for reuse (``retain_host_memory``, engine/weights/host_memory.py): no page faults
  for the memory every CPU step allocates and frees again.
- ``torch.compile`` of the UNet and the VAE decoder (CPU and CUDA), with inductor's persistent
  cache kept in the data dir so a restart reuses the compiled kernels instead of compiling again.

The first three are on by default only on the devices where they measured faster
(``DEVICE_DEFAULTS``); a setting given explicitly (``PIXELSERVE_CHANNELS_LAST``,
``PIXELSERVE_FUSE_QKV``, ``PIXELSERVE_RETAIN_HOST_MEMORY``) applies on every device.

VAE tiling above a pixel threshold: decoding a large image in tiles bounds the decoder's peak
memory (the tiles are blended, so it changes the image slightly: off below the threshold).

An approximation that changes the image, off by default: FP8 linear layers (``fp8``, torchao's
float8 dynamic-activation/weight quantization) on GPUs of compute capability 8.9 or newer (Ada,
Hopper). The other approximations (step caching, a tiny VAE) are in engine/speed/approx.py.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

#: The oldest CUDA compute capability with FP8 tensor cores (Ada: 8.9, Hopper: 9.0).
FP8_MIN_CAPABILITY = (8, 9)


class UnsupportedOptimization(RuntimeError):
    """A switched-on optimisation this machine cannot run; raised at start, never per request."""


#: Device kind -> the exact optimisations on by default there, as measured (None in Optimizations:
#: this table). On a 2-core x86 CPU, full-size SD 1.5 at 256x256 (bench/perf.py ``cpu_fullsize``, the
#: UNet step and VAE decode timed alternately in one process): channels_last and fused QKV were slower,
#: retained host memory faster (no page faults). CUDA keeps what the GPU rows were built with, except
#: fused QKV, which stays opt-in everywhere (LoRAs loaded after fusing would not reach it).
DEVICE_DEFAULTS: dict[str, dict[str, bool]] = {
    "cpu": {"channels_last": False, "fuse_qkv": False, "retain_host_memory": True},
    "cuda": {"channels_last": True, "fuse_qkv": False, "retain_host_memory": False},
}
OTHER_DEVICES = {"channels_last": False, "fuse_qkv": False, "retain_host_memory": False}  # mps ...: untested


@dataclass(frozen=True)
class Optimizations:
    compile: bool = False  # torch.compile UNet + VAE decoder (slow first start, faster jobs)
    compile_mode: str | None = None  # torch.compile mode: None (default), "max-autotune", ...
    dynamic: bool | None = None  # dynamic shapes: one graph for every resolution (None: torch decides)
    channels_last: bool | None = None  # None: DEVICE_DEFAULTS
    fuse_qkv: bool | None = None  # one QKV matmul per attention (exact; LoRA loaded later would not reach it)
    retain_host_memory: bool | None = None  # glibc malloc keeps freed memory (engine/weights/host_memory.py)
    fp8: bool = False  # FP8 linear layers (changes the image; CUDA capability >= 8.9 and torchao)

    def on(self, name: str, device: str) -> bool:
        """Whether the exact optimisation ``name`` applies on ``device``: as set, else the device's default."""
        value = getattr(self, name)
        if value is not None:
            return bool(value)
        return DEVICE_DEFAULTS.get(device.partition(":")[0], OTHER_DEVICES)[name]


def check_supported(opts: Optimizations, devices: list[str]) -> None:
    """Refuse at start what this machine cannot do, saying why."""
    if not opts.fp8:
        return
    try:
        import torchao  # noqa: F401
    except ImportError:
        raise UnsupportedOptimization("PIXELSERVE_FP8 needs torchao: pip install 'pixelserve[fp8]'") from None
    for device in devices:
        if not device.startswith("cuda"):
            raise UnsupportedOptimization(f"PIXELSERVE_FP8 needs CUDA devices; {device} is not one")
        capability = torch.cuda.get_device_capability(device)
        if capability < FP8_MIN_CAPABILITY:
            raise UnsupportedOptimization(
                f"PIXELSERVE_FP8 needs compute capability 8.9+ (Ada, Hopper); {device} has "
                f"{capability[0]}.{capability[1]}")


def use_compile_cache(directory: Path) -> None:
    """Point inductor's on-disk caches (FX graphs, kernels) at ``directory`` unless already set."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(directory))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")


def fuse_qkv(pipe: Any) -> None:
    """Fused QKV projections in the UNet and VAE where their attention supports it."""
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is None or not hasattr(module, "fuse_qkv_projections"):
            continue
        try:
            module.fuse_qkv_projections()
        except ValueError as e:  # added KV projections (unCLIP's decoder): left as it is
            log.info("not fusing QKV of %s: %s", name, e)


def float8_linears(module: torch.nn.Module) -> None:
    """FP8 weights and dynamically scaled FP8 activations for the module's linear layers."""
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def apply(pipe: Any, device: str, opts: Optimizations) -> Any:
    """Optimise ``pipe`` in place (its modules are shared by every task pipeline built from it)."""
    channels_last = opts.on("channels_last", device)
    if opts.on("fuse_qkv", device):
        fuse_qkv(pipe)
    if opts.compile:
        # A LoRA slot count the UNet has not run with compiles one more graph (lora_slots.py): up
        # to 9 counts, each again after a slot is added. Dynamo's default of 8 graphs per function
        # would then silently run the UNet eagerly.
        # (``as``: a plain ``import torch._dynamo`` would make ``torch`` a local name of this whole
        # function, unbound below when compile is off.)
        import torch._dynamo as dynamo

        dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        if channels_last:
            module.to(memory_format=torch.channels_last)
        if opts.fp8:
            float8_linears(module)
        if opts.compile:
            setattr(pipe, name, torch.compile(module, mode=opts.compile_mode, dynamic=opts.dynamic))
            pipe.register_modules(**{name: getattr(pipe, name)})
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if channels_last:
            vae.to(memory_format=torch.channels_last)
        if opts.compile and hasattr(vae, "decoder"):
            vae.decoder = torch.compile(vae.decoder, mode=opts.compile_mode, dynamic=opts.dynamic)
    return pipe


def vae_tiling(pipe: Any, width: int, height: int, threshold_pixels: int) -> None:
    """Tile the VAE for this call when the image is over ``threshold_pixels`` (0: never).

    The VAE is shared by every task pipeline of the model, but one device runs one call at a
    time (engine/runners/local.py), so setting it per call is safe.
    """
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return
    if threshold_pixels and width * height > threshold_pixels:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
