"""A Studio job's stored plan rebuilds the same request after a restart (async jobs run from it)."""

from types import SimpleNamespace

from pixelserve.core.request import GenerationRequest, LoraRef, PostProcess
from pixelserve.service.studio import StudioService, _plan


def test_plan_round_trip_keeps_the_style_lora_and_settings():
    request = GenerationRequest(model="tiny-sd", prompt="ink of a cat", negative_prompt="colour", width=64,
                                height=88, num_images=2, seeds=(5, 6), steps=3, guidance_scale=5.0,
                                scheduler="euler_a", loras=(LoraRef("ink", "/a/ink.safetensors", 0.8),),
                                post=PostProcess(nsfw_check=True))
    rebuilt = StudioService._request_of(SimpleNamespace(max_pixels=1 << 20), {"request": _plan(request)})
    assert rebuilt == request
