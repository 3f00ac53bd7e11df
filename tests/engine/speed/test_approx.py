"""Opt-in approximations (engine/speed/approx.py): each changes the image, by a bounded amount, and
does less work; the exact fused-QKV switch (engine/speed/optimize.py) does not change it."""

import asyncio

import numpy as np
import pytest

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.speed import optimize
from pixelserve.engine.demo import tiny
from pixelserve.engine.runners.local import LocalEngine

#: Step caching every 2nd UNet evaluation moves the tiny model's image by at most this much on
#: average per channel (0-255). Measured 1.4 (max 12) here; half the steps reuse deep features.
STEP_CACHE_MEAN_TOLERANCE = 6
#: Fused QKV is exact up to float summation order (measured 0 on CPU).
FUSED_MAX_TOLERANCE = 2


def run(tiny_cache, steps=6, **engine_kw):
    """The image of one fixed request, and how often the UNet's mid block really computed."""

    async def go():
        engine = LocalEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, **engine_kw)
        await engine.start()
        await engine.wait_ready()
        try:
            assert engine.health().ready, engine.health().loading_error
            unet = engine.registry.get("tiny-sd", "cpu").pipe.unet
            calls = []
            hook = unet.mid_block.resnets[0].register_forward_hook(lambda *a: calls.append(1))
            req = GenerationRequest(model="tiny-sd", prompt="a red cube", width=64, height=64, steps=steps,
                                    seeds=(5,))
            res = await engine.submit("j", req)
            hook.remove()
            return np.asarray(res.images[0], dtype=int), len(calls), engine.registry.get("tiny-sd", "cpu")
        finally:
            await engine.stop()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def exact(tiny_cache):
    return run(tiny_cache)


def test_step_caching_skips_deep_blocks_and_moves_the_image_a_bounded_amount(tiny_cache, exact):
    image, deep_calls, _ = exact
    cached, cached_deep_calls, _ = run(tiny_cache, step_cache_interval=2)
    assert deep_calls == 6 and cached_deep_calls == 3  # deep features every 2nd step only
    diff = np.abs(image - cached)
    assert 0 < diff.mean() <= STEP_CACHE_MEAN_TOLERANCE  # changed, by a bounded amount


def test_step_caching_leaves_the_unet_unwrapped_after_the_call(tiny_cache):
    _, _, model = run(tiny_cache, steps=2, step_cache_interval=2)
    assert "forward" not in vars(model.pipe.unet.mid_block) or \
        vars(model.pipe.unet.mid_block)["forward"].__func__ is type(model.pipe.unet.mid_block).forward


def test_fused_qkv_equals_eager_within_tolerance(tiny_cache, exact):
    image, _, _ = exact
    fused, _, model = run(tiny_cache, fuse_qkv=True)
    assert any(hasattr(m, "to_qkv") for m in model.pipe.unet.modules())  # really fused
    assert np.abs(image - fused).max() <= FUSED_MAX_TOLERANCE


def test_tiny_vae_decodes_instead_of_the_full_vae(tiny_cache, exact):
    image, _, _ = exact
    folder = tiny.ensure_tiny_vae(tiny_cache / "tiny")
    other, _, model = run(tiny_cache, tiny_vae={"sd": folder})
    assert type(model.pipe.vae).__name__ == "AutoencoderTiny"
    assert other.shape == image.shape and np.abs(image - other).mean() > 0


def test_compile_and_step_caching_together_are_refused_at_start(tiny_cache):
    with pytest.raises(optimize.UnsupportedOptimization, match="not both"):
        LocalEngine(demo_config().models, tiny_cache, compile=True, step_cache_interval=3)


def test_fp8_is_refused_at_start_without_an_fp8_gpu(tiny_cache):
    with pytest.raises(optimize.UnsupportedOptimization, match="FP8"):
        LocalEngine(demo_config().models, tiny_cache, devices="cpu", fp8=True)


def test_a_tiny_vae_setting_must_name_an_autoencoder_folder(tmp_path):
    from pydantic import ValidationError

    from pixelserve.settings import Settings

    with pytest.raises(ValidationError, match="AutoencoderTiny"):
        Settings(data_dir=tmp_path, tiny_vae={"sd": str(tmp_path)})
    with pytest.raises(ValidationError, match="family"):
        Settings(data_dir=tmp_path, tiny_vae={"unclip": str(tmp_path)})
