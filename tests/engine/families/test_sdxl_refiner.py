"""SDXL base + refiner: high_noise_frac moves the handover (diffusers denoising_end / denoising_start)."""

import numpy as np

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.demo import tiny
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.models import ModelRegistry
from tests.engine.conftest import request_for


def test_high_noise_frac_moves_the_handover(tiny_cache, tmp_path):
    base = tiny.ensure_tiny_model("sdxl", tiny_cache / "tiny")
    refiner = tiny.ensure_tiny_model("sdxl-refiner", tiny_cache / "tiny")
    model = ModelRegistry({"xl": ModelSpec("xl", "sdxl", base, refiner=refiner)}, tmp_path).get("xl", "cpu")
    family = family_for("sdxl")

    def draw(**kw):
        steps = []
        images = family.run(model, request_for("xl", steps=10, **kw), on_step=lambda s, t: steps.append(s))
        return np.asarray(images[0], dtype=int), steps

    default, steps = draw()
    explicit, _ = draw(high_noise_frac=0.8)
    early, early_steps = draw(high_noise_frac=0.5)
    assert np.array_equal(default, explicit)  # no high_noise_frac: the family default, 0.8
    assert np.abs(early - default).mean() > 0.1
    assert steps == early_steps == list(range(1, 11))  # base then refiner, one job of 10 steps
