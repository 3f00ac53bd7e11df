import pytest

from pixelserve.core.request import MAX_SEED, SCHEDULERS, GenerationRequest
from pixelserve.core.validate import Limits, validate
from pixelserve.engine.client import ModelInfo
from pixelserve.errors import InvalidRequest, NotFound, NotSupported

MODELS = [ModelInfo("m", "sd", ("txt2img", "img2img", "inpaint"), False, True, True),
          ModelInfo("t2i-only", "sd", ("txt2img",), False, True, True),
          ModelInfo("u", "unclip", ("txt2img", "variation"), False, True, True)]


def req(**kw):
    base = dict(model="m", prompt="a cat", width=64, height=64, steps=2)
    base.update(kw)
    return GenerationRequest(**base)


def test_fills_one_random_seed_per_image():
    out = validate(req(num_images=3), MODELS)
    assert len(out.seeds) == 3 and all(0 <= s <= MAX_SEED for s in out.seeds)
    assert validate(req(num_images=2, seeds=(5, 6)), MODELS).seeds == (5, 6)


@pytest.mark.parametrize("kw, exc, field", [
    ({"model": "nope"}, NotFound, "model"),
    ({"model": "t2i-only", "task": "img2img", "init_image": object()}, NotSupported, "task"),
    ({"prompt": "  "}, InvalidRequest, "prompt"),
    ({"width": 60}, InvalidRequest, "width"),
    ({"height": 100}, InvalidRequest, "height"),
    ({"width": 8192, "height": 8192}, InvalidRequest, "width"),
    ({"num_images": 0}, InvalidRequest, "num_images"),
    ({"steps": 0}, InvalidRequest, "steps"),
    ({"steps": 501}, InvalidRequest, "steps"),
    ({"guidance_scale": -1}, InvalidRequest, "guidance_scale"),
    ({"scheduler": "warp"}, InvalidRequest, "scheduler"),
    ({"task": "img2img"}, InvalidRequest, "image"),
    ({"task": "inpaint", "init_image": object()}, InvalidRequest, "mask"),
    ({"strength": 0.0}, InvalidRequest, "strength"),
    ({"use_refiner": True}, NotSupported, "refiner"),
    ({"num_images": 2, "seeds": (1,)}, InvalidRequest, "seed"),
    ({"seeds": (MAX_SEED + 1,)}, InvalidRequest, "seed"),
    ({"seeds": (-1,)}, InvalidRequest, "seed"),
    ({"model": "u", "task": "variation"}, InvalidRequest, "image"),
    ({"model": "u", "scheduler": "euler"}, NotSupported, "scheduler"),
])
def test_rejects(kw, exc, field):
    with pytest.raises(exc) as e:
        validate(req(**kw), MODELS)
    assert e.value.field == field


def test_pixel_limit_is_configurable():
    with pytest.raises(InvalidRequest):
        validate(req(width=256, height=256), MODELS, Limits(max_pixels=128 * 128))


def test_every_sampler_names_a_diffusers_scheduler():
    import diffusers

    from pixelserve.core.samplers import SAMPLERS

    assert tuple(SAMPLERS) == SCHEDULERS
    assert [name for name, (cls, _) in SAMPLERS.items() if not hasattr(diffusers, cls)] == []


def test_empty_prompt_is_fine_for_image_tasks():
    assert validate(req(model="u", task="variation", prompt="", init_image=object()), MODELS).prompt == ""
    assert validate(req(model="u", scheduler="ddpm"), MODELS).scheduler == "ddpm"
