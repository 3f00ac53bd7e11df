"""The engine on a CUDA device (fp16). Skipped where torch sees no CUDA device (CI has none)."""

import asyncio

import pytest
import torch

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.runners.local import LocalEngine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible to torch"),
]


def test_tiny_models_on_cuda_are_deterministic_and_unload_cleanly(tiny_cache):
    async def go():
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        engine = LocalEngine(demo_config().models, tiny_cache, devices="cuda:0")
        await engine.start()
        await engine.wait_ready()
        req = GenerationRequest(model="tiny-sdxl", prompt="a cat", width=128, height=128, steps=4, seeds=(1, 2),
                                num_images=2)
        a = await engine.submit("a", req)
        b = await engine.submit("b", req)
        dtype = engine.registry.get("tiny-sdxl", "cuda:0").pipe.unet.dtype
        await engine.stop()
        torch.cuda.synchronize()
        return a, b, dtype, baseline, torch.cuda.memory_allocated()

    a, b, dtype, baseline, after = asyncio.run(go())
    assert dtype == torch.float16
    assert [im.tobytes() for im in a.images] == [im.tobytes() for im in b.images]
    assert after == baseline  # every model and activation released on stop
