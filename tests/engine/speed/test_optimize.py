"""torch.compile'd UNet + VAE decoder: the same image as eager, within the stated tolerance."""

import asyncio

import numpy as np

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.runners.local import LocalEngine

#: Max difference of any pixel channel (0-255) between compiled and eager output. Measured 0 on
#: CPU; fused kernels may reorder float sums, so a little room is allowed.
TOLERANCE = 2


def generate(tiny_cache, **engine_kw):
    async def go():
        engine = LocalEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, **engine_kw)
        await engine.start()
        await engine.wait_ready()
        try:
            assert engine.health().ready
            req = GenerationRequest(model="tiny-sd", prompt="a red cube", width=64, height=64, steps=3, seeds=(5,))
            res = await engine.submit("j", req)
            model = engine.registry.get("tiny-sd", engine.devices[0])
            return np.asarray(res.images[0], dtype=int), type(model.pipe.unet).__name__
        finally:
            await engine.stop()

    return asyncio.run(go())


def test_compiled_output_equals_eager_within_tolerance(tiny_cache):
    eager, eager_unet = generate(tiny_cache)
    compiled, compiled_unet = generate(tiny_cache, compile=True)
    assert eager_unet == "UNet2DConditionModel" and compiled_unet == "OptimizedModule"
    assert np.abs(eager - compiled).max() <= TOLERANCE
    assert (tiny_cache / "compile").is_dir()  # the persistent compile cache lives in the data dir


def test_vae_tiles_only_above_the_pixel_threshold(tiny_cache, monkeypatch):
    from pixelserve.engine.speed import optimize

    seen = []
    real = optimize.vae_tiling

    def spy(pipe, width, height, threshold):
        real(pipe, width, height, threshold)
        seen.append((width, height, pipe.vae.use_tiling))

    monkeypatch.setattr(optimize, "vae_tiling", spy)

    async def go():
        engine = LocalEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, vae_tiling_pixels=64 * 64)
        await engine.start()
        await engine.wait_ready()
        try:
            for size in (64, 128):
                req = GenerationRequest(model="tiny-sd", prompt="x", width=size, height=size, steps=2, seeds=(1,))
                res = await engine.submit(f"j{size}", req)
                assert res.images[0].size == (size, size)
        finally:
            await engine.stop()

    asyncio.run(go())
    assert seen == [(64, 64, False), (128, 128, True)]


def test_exact_optimisations_follow_the_device_defaults_unless_set():
    from pixelserve.engine.speed.optimize import Optimizations

    default = Optimizations()
    assert not default.on("channels_last", "cpu") and default.on("channels_last", "cuda:1")
    assert default.on("retain_host_memory", "cpu") and not default.on("retain_host_memory", "cuda:0")
    assert not default.on("fuse_qkv", "cpu") and not default.on("fuse_qkv", "cuda")
    assert not default.on("channels_last", "mps") and not default.on("retain_host_memory", "mps")
    chosen = Optimizations(channels_last=True, fuse_qkv=True, retain_host_memory=False)
    for device in ("cpu", "cuda:0"):  # a setting given applies on every device
        assert chosen.on("channels_last", device) and chosen.on("fuse_qkv", device)
        assert not chosen.on("retain_host_memory", device)


def test_channels_last_on_a_cpu_only_when_asked():
    from types import SimpleNamespace

    import torch

    from pixelserve.engine.speed import optimize

    def pipe():
        return SimpleNamespace(unet=torch.nn.Conv2d(4, 8, 3), vae=torch.nn.Conv2d(4, 8, 3))

    def channels_last(p):
        return [m.weight.is_contiguous(memory_format=torch.channels_last) for m in (p.unet, p.vae)]

    default = optimize.apply(pipe(), "cpu", optimize.Optimizations())
    assert channels_last(default) == [False, False]
    asked = optimize.apply(pipe(), "cpu", optimize.Optimizations(channels_last=True))
    assert channels_last(asked) == [True, True]
