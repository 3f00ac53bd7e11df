"""Sampler name (``core.samplers``) -> scheduler, built with ``from_config`` on the model's own config."""

from __future__ import annotations

from typing import Any

import diffusers

from pixelserve.core.samplers import SAMPLERS


def make_scheduler(name: str | None, base_config: Any) -> Any:
    """A fresh scheduler instance per call: schedulers carry state and must never be shared."""
    if name is None:
        cls_name, overrides = base_config.get("_class_name"), {}
    else:
        cls_name, overrides = SAMPLERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_config, **overrides)
