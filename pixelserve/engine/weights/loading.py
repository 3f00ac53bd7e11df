"""Pipelines from local weights: a diffusers folder or one safetensors checkpoint (format by content).

Nothing is downloaded: every load passes ``local_files_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixelserve.engine.weights import single_file
from pixelserve.engine.weights.formats import check_diffusers_folder_is_safetensors, detect_format
from pixelserve.engine.weights.tokenizers import shared_tokenizers


def default_dtype(device: str) -> torch.dtype:
    return torch.float16 if device.startswith("cuda") else torch.float32


def load_pipeline(pipeline_cls: Any, path: Path, family: str, dtype: torch.dtype, cache_dir: Path, *,
                  config_dir: Path | None = None, base: Any = None) -> Any:
    """Load one pipeline from a diffusers folder or a single safetensors file, offline.

    ``config_dir`` describes a single file's architecture (None: the configs shipped for
    ``family``); ``base`` is the base pipeline a refiner shares components with.
    """
    fmt = detect_format(path)
    shared = {}
    if base is not None:  # a refiner shares the base model's VAE and second text encoder
        shared = {"vae": base.vae, "text_encoder_2": getattr(base, "text_encoder_2", None)}
        shared = {k: v for k, v in shared.items() if v is not None}
    if fmt == "diffusers":
        check_diffusers_folder_is_safetensors(path)
        tokenizers = {k: v for k, v in shared_tokenizers(path).items() if k not in shared}
        return pipeline_cls.from_pretrained(
            path, dtype=dtype, local_files_only=True, use_safetensors=True, **tokenizers, **shared
        )
    return single_file.load_single_file(
        pipeline_cls, path, family=family, config_dir=config_dir, work_dir=cache_dir / "single_file",
        torch_dtype=dtype, **shared,
    )
