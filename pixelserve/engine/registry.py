"""Model id -> family + weights location; loads each model once per device and caches it.

Weights come only from local paths, only as safetensors, the format detected by content:
a diffusers folder (``model_index.json``) or one ``.safetensors`` checkpoint as A1111/ComfyUI
users keep them. Nothing is downloaded: every load passes ``local_files_only=True``.
"""

from __future__ import annotations

import gc
import json
import logging
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixelserve.core.models import ModelSpec
from pixelserve.engine import tiny
from pixelserve.engine.families import family_for

log = logging.getLogger(__name__)


class WeightsFormatError(ValueError):
    """The weights path holds nothing pixelserve will load (pickle, unknown layout)."""


#: safetensors refuses headers over 100 MB; pixelserve refuses them before opening the file.
MAX_SAFETENSORS_HEADER = 100_000_000


def check_safetensors(path: Path) -> None:
    """Refuse ``path`` unless its content starts like safetensors with a sane header length.

    safetensors: an 8-byte little-endian header length, then a JSON object. The length is checked
    before anything maps the file: one longer than the file, or than safetensors' own 100 MB cap,
    is a forged or broken file. The name never matters (a pickle called .safetensors is refused).
    """
    with Path(path).open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n < min(Path(path).stat().st_size, MAX_SAFETENSORS_HEADER):
            return
    raise WeightsFormatError(f"{path} is not a safetensors file; only safetensors weights are loaded")


def detect_format(path: Path) -> str:
    """'diffusers' for a diffusers folder, 'single_file' for a safetensors checkpoint."""
    path = Path(path)
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return "diffusers"
        raise WeightsFormatError(f"{path} is a folder without model_index.json (not a diffusers model)")
    if path.is_file():
        check_safetensors(path)
        return "single_file"
    raise WeightsFormatError(f"{path} does not exist")


def check_diffusers_folder_is_safetensors(path: Path) -> None:
    """Refuse a diffusers folder whose components exist only as pickle (.bin/.ckpt/.pt), or whose
    .safetensors files are not safetensors by content."""
    index = json.loads((path / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        sub = path / name
        if not sub.is_dir():
            continue
        weights = [p for p in sub.iterdir() if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth")]
        if weights and not any(p.suffix == ".safetensors" for p in weights):
            raise WeightsFormatError(f"{sub} has only pickle weights; convert them to safetensors")
        for p in weights:
            if p.suffix == ".safetensors":
                check_safetensors(p)


@dataclass
class LoadedModel:
    spec: ModelSpec
    device: str
    pipe: Any  # the family's base (txt2img) pipeline; task pipelines share its components
    refiner: Any = None
    #: modules the family's task pipelines share besides pipe's own (unclip: the image encoder)
    extras: dict[str, Any] = field(default_factory=dict)


def default_dtype(device: str) -> torch.dtype:
    return torch.float16 if device.startswith("cuda") else torch.float32


class ModelRegistry:
    """Loads and caches models per device. Thread-safe; loads are serialized per registry."""

    def __init__(self, specs: dict[str, ModelSpec], cache_dir: Path):
        self.specs = dict(specs)
        self.cache_dir = Path(cache_dir)
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def is_loaded(self, model_id: str, device: str) -> bool:
        return (model_id, device) in self._loaded

    def get(self, model_id: str, device: str) -> LoadedModel:
        key = (model_id, device)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load(self.specs[model_id], device)
            return self._loaded[key]

    def unload(self, model_id: str, device: str) -> None:
        with self._lock:
            model = self._loaded.pop((model_id, device), None)
        if model is not None:
            del model
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    def weights_path(self, spec: ModelSpec) -> Path:
        if spec.path is not None:
            return spec.path
        return tiny.ensure_tiny_model(spec.family, self.cache_dir / "tiny")

    def _load(self, spec: ModelSpec, device: str) -> LoadedModel:
        family = family_for(spec.family)
        dtype = default_dtype(device)
        path = self.weights_path(spec)
        log.info("loading model %s (%s) from %s on %s", spec.id, spec.family, path, device)
        pipe, extras = family.load(path, dtype, self.cache_dir, config_dir=spec.config)
        refiner = None
        if spec.refiner is not None:
            refiner = load_pipeline(family.refiner_class(), spec.refiner, spec.family, dtype, self.cache_dir,
                                    config_dir=spec.refiner_config, base=pipe)
            refiner.to(device)
        pipe.to(device)
        for module in extras.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        pipe.set_progress_bar_config(disable=True)
        if refiner is not None:
            refiner.set_progress_bar_config(disable=True)
        return LoadedModel(spec=spec, device=device, pipe=pipe, refiner=refiner, extras=extras)


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
        return pipeline_cls.from_pretrained(
            path, dtype=dtype, local_files_only=True, use_safetensors=True, **shared
        )
    from pixelserve.engine import single_file

    return single_file.load_single_file(
        pipeline_cls, path, family=family, config_dir=config_dir, work_dir=cache_dir / "single_file",
        torch_dtype=dtype, **shared,
    )
