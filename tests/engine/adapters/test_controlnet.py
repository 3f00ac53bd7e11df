"""ControlNet for sd and sdxl: the control map, its scale and early stop, folder or one file, no leaks."""

import numpy as np
import pytest
from PIL import Image

from pixelserve.core.request import ControlNetRef
from pixelserve.engine.adapters import controlnet
from pixelserve.engine.demo import tiny_adapters
from pixelserve.errors import NotSupported
from tests.engine.conftest import generate, request_for


def _control_source(size=(96, 80)):
    im = Image.new("RGB", size, (20, 20, 20))
    im.paste((240, 240, 240), (20, 15, 70, 60))
    return im


def test_canny_map_at_the_output_size():
    ref = ControlNetRef("c", "/unused", _control_source(), preprocess="canny")
    edges = controlnet.control_image(ref, 64, 64)
    arr = np.asarray(edges)
    assert edges.size == (64, 64) and set(np.unique(arr)) <= {0, 255} and arr.max() == 255
    as_sent = controlnet.control_image(ControlNetRef("c", "/unused", _control_source(), preprocess=None), 64, 64)
    assert as_sent.size == (64, 64) and np.asarray(as_sent).mean() > arr.mean()
    with pytest.raises(NotSupported) as e:
        controlnet.control_image(ControlNetRef("c", "/unused", _control_source(), preprocess="depth"), 64, 64)
    assert e.value.field == "controlnet_preprocess" and "depth" in e.value.message


@pytest.mark.parametrize("model_id,family", [("tiny-sd", "sd"), ("tiny-sdxl", "sdxl")])
def test_controlnet_guides_the_image_and_leaves_no_trace(tiny_models, adapter_dir, model_id, family):
    model = tiny_models[model_id]
    folder = str(tiny_adapters.ensure_tiny_controlnet(family, adapter_dir))
    before = generate(model, request_for(model_id, steps=4))

    def with_control(**kw):
        ref = ControlNetRef("canny", kw.pop("path", folder), _control_source(), **kw)
        return generate(model, request_for(model_id, steps=4, controlnet=ref))

    full = with_control()
    assert np.abs(full - before).mean() > 1
    assert np.abs(with_control(conditioning_scale=0.0) - before).max() <= 1  # no control: the plain image
    assert np.abs(with_control(end=0.5) - full).mean() > 0.1  # control stops after half the steps
    assert np.abs(with_control(preprocess=None) - full).max() >= 2  # the map as sent, not its edges
    single = f"{folder}/diffusion_pytorch_model.safetensors"  # the same weights as one file
    assert np.abs(with_control(path=single) - full).max() <= 1
    assert np.array_equal(generate(model, request_for(model_id, steps=4)), before)


def test_controlnet_with_img2img(tiny_models, adapter_dir):
    model = tiny_models["tiny-sd"]
    init = Image.new("RGB", (64, 64), (120, 60, 200))
    ref = ControlNetRef("canny", str(tiny_adapters.ensure_tiny_controlnet("sd", adapter_dir)), _control_source())
    plain = generate(model, request_for("tiny-sd", task="img2img", init_image=init, strength=0.9, steps=4))
    guided = generate(model, request_for("tiny-sd", task="img2img", init_image=init, strength=0.9, steps=4,
                                         controlnet=ref))
    assert guided.shape == plain.shape and np.abs(guided - plain).mean() > 0.1
