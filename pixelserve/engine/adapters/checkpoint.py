"""Checkpoint overrides: another checkpoint of the model's family as this call's base.

Loaded through the weights loader (a diffusers folder or one file; a single file takes the
architecture of the model it replaces) and kept in a bounded cache per model and device. It
becomes this call's *base*: its own LoRA state and caches.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pixelserve.engine.adapters.base import Base, cached_load, own_base
from pixelserve.engine.weights import gc_freeze
from pixelserve.engine.weights.formats import detect_format
from pixelserve.engine.weights.loading import default_dtype, load_pipeline
from pixelserve.errors import InvalidRequest

log = logging.getLogger(__name__)

#: Checkpoint overrides kept loaded per model and device (each is a whole model).
MAX_CHECKPOINTS = 1


def base_for(model: Any, checkpoint: str | None) -> Base:
    """This call's base: the model itself, or the checkpoint override (loaded once, cached)."""
    if checkpoint is None:
        return own_base(model)
    return cached_load(model, "checkpoints", MAX_CHECKPOINTS, checkpoint,
                       lambda key: Base(_load_checkpoint(model, Path(checkpoint)), f"checkpoint:{key}"),
                       on_evict=lambda _, base: _release(model, base))


def _architecture_config(model: Any) -> Path | None:
    """Configs for a single-file override: the model's own, so the override has its architecture."""
    if model.spec.config is not None:
        return model.spec.config
    if model.weights is not None and detect_format(model.weights) == "diffusers":
        return model.weights
    return None  # the configs shipped for the family


def _load_checkpoint(model: Any, path: Path) -> Any:
    # The override is another instance of the model's own (txt2img) pipeline class, the one its
    # family loaded it as.
    family = model.spec.family
    log.info("loading checkpoint override %s for model %s", path, model.spec.id)
    try:
        pipe = load_pipeline(type(model.pipe), path, family, default_dtype(model.device),
                             model.cache_dir, config_dir=_architecture_config(model))
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise InvalidRequest(f"cannot load {path.name} as a {family} checkpoint: {e}", field="checkpoint") from e
    pipe.to(model.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _release(model: Any, base: Base) -> None:
    del base.pipe
    gc_freeze.free_memory(model.device)
