"""A Studio job's stored plan rebuilds the same request after a restart (async jobs run from it)."""

from PIL import Image

from pixelserve.core.request import GenerationRequest, LoraRef, PostProcess
from pixelserve.service.studio_policy import request_of_plan


def test_plan_round_trip_keeps_the_style_lora_and_settings():
    request = GenerationRequest(model="tiny-sd", prompt="ink of a cat", negative_prompt="colour", width=64,
                                height=88, num_images=2, seeds=(5, 6), steps=3, guidance_scale=5.0,
                                scheduler="euler_a", loras=(LoraRef("ink", "/a/ink.safetensors", 0.8),),
                                post=PostProcess(nsfw_check=True))
    rebuilt = request_of_plan({"request": request.describe()}, None)
    assert rebuilt == request


def test_plan_reference_is_the_init_image_or_the_image_prompt():
    reference = Image.new("RGB", (64, 64), "red")
    plain = GenerationRequest(model="tiny-sd", prompt="a cat", task="img2img", width=64, height=64, seeds=(1,),
                              strength=0.5, init_image=reference)
    rebuilt = request_of_plan({"request": plain.describe()}, reference)
    assert rebuilt.init_image is reference and rebuilt.image_prompt is None and rebuilt == plain
    prompted = request_of_plan({"request": {**plain.describe(), "task": "txt2img", "image_prompt_scale": 0.4}},
                               reference)
    assert prompted.init_image is None and prompted.image_prompt.images == (reference,)
    assert prompted.image_prompt.scale == 0.4


def test_plans_written_before_the_shared_serialiser_still_rebuild():
    """Plans of jobs admitted by an older server (they resume after an upgrade) had the NSFW flag alone."""
    old = {"model": "tiny-sd", "task": "txt2img", "prompt": "a cat", "negative_prompt": None, "width": 64,
           "height": 64, "num_images": 1, "steps": 2, "guidance_scale": 7.0, "scheduler": None, "strength": None,
           "seeds": [7], "nsfw_check": True, "loras": [], "image_prompt_scale": None}
    rebuilt = request_of_plan({"request": old}, None)
    assert rebuilt.post == PostProcess(nsfw_check=True) and rebuilt.seeds == (7,) and rebuilt.steps == 2
