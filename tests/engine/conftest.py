"""Engine fixtures: the tiny models loaded once per test module, and their tiny adapters."""

from __future__ import annotations

import numpy as np
import pytest

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.models import ModelRegistry


@pytest.fixture(scope="module")
def tiny_models(tiny_cache, tmp_path_factory):
    """model id -> LoadedModel on cpu (a registry of its own: adapter state stays in the module)."""
    cache = tmp_path_factory.mktemp("models-cache")
    (cache / "tiny").symlink_to(tiny_cache / "tiny")
    registry = ModelRegistry(demo_config().models, cache)
    return {mid: registry.get(mid, "cpu") for mid in ("tiny-sd", "tiny-sdxl")}


@pytest.fixture(scope="session")
def adapter_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-adapters")


def request_for(model_id: str, **kw) -> GenerationRequest:
    base = dict(model=model_id, prompt="a red cube on a table", width=64, height=64, steps=2, seeds=(3,))
    base.update(kw)
    return GenerationRequest(**base)


def generate(model, request: GenerationRequest) -> np.ndarray:
    """The request's images through the family's run(), as one int array (images stacked)."""
    images = family_for(model.spec.family).run(model, request)
    return np.stack([np.asarray(im, dtype=int) for im in images])
