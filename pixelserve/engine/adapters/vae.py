"""VAE overrides: one AutoencoderKL file (original or diffusers layout), its config taken from the
model's own VAE, swapped into this call's pipeline only (families/base.py builds a fresh pipeline
object per call, so nothing shared is modified)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelserve.engine.adapters.base import cached_load
from pixelserve.engine.weights import single_file
from pixelserve.errors import InvalidRequest

MAX_VAES = 2


def vae_for(model: Any, path: str) -> Any:
    """An AutoencoderKL from one safetensors file, with the model's own VAE config (cached)."""
    return cached_load(model, "vaes", MAX_VAES, path, lambda _: _load(model, path))


def _load(model: Any, path: str) -> Any:
    from diffusers import AutoencoderKL

    own = model.pipe.vae
    config = Path(model.cache_dir) / "vae-config" / model.spec.id
    config.mkdir(parents=True, exist_ok=True)
    own.save_config(config)
    work = Path(model.cache_dir) / "single_file"
    try:
        vae = AutoencoderKL.from_single_file(
            str(single_file._safetensors_path(Path(path), work)), config=str(config), local_files_only=True,
            torch_dtype=own.dtype)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise InvalidRequest(f"cannot load {Path(path).name} as this model's VAE: {e}", field="vae") from e
    return vae.to(model.device).eval()
