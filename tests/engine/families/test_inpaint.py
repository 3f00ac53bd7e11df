"""inpaint_full_res (+ padding) and outpainting; pixels outside the mask always come back as sent."""

import numpy as np
import pytest
from PIL import Image

from pixelserve.engine.families import inpaint
from tests.engine.conftest import generate, request_for


def _picture():
    im = Image.new("RGB", (64, 64), (30, 90, 160))
    im.paste((220, 200, 40), (16, 16, 48, 48))
    return im


def _mask(box, size=(64, 64)):
    m = Image.new("L", size, 0)
    m.paste(255, box)
    return m


def _unmasked_equal(images, picture, mask):
    keep = np.asarray(mask) == 0
    return all(np.array_equal(im[keep], np.asarray(picture, dtype=int)[keep]) for im in images)


@pytest.mark.parametrize("model_id", ["tiny-sd", "tiny-sdxl"])
def test_full_res_repaints_a_crop_around_the_mask(tiny_models, model_id):
    model = tiny_models[model_id]
    picture, mask = _picture(), _mask((24, 24, 36, 36))
    common = dict(task="inpaint", init_image=picture, mask_image=mask, strength=1.0, steps=3)
    plain = generate(model, request_for(model_id, **common))
    full_res = generate(model, request_for(model_id, inpaint_full_res=True, inpaint_full_res_padding=4, **common))
    wider = generate(model, request_for(model_id, inpaint_full_res=True, inpaint_full_res_padding=16, **common))
    assert np.abs(full_res - plain).mean() > 0.05 and np.abs(full_res - wider).mean() > 0.05
    assert _unmasked_equal([plain[0], full_res[0], wider[0]], picture, mask)
    assert np.array_equal(generate(model, request_for(model_id, **common)), plain)


def test_prefill_extends_the_picture_into_the_border():
    picture = Image.new("RGB", (64, 64), (0, 0, 0))
    picture.paste((200, 40, 40), (8, 8, 56, 56))  # the picture; its black frame is new canvas
    border = _mask((0, 0, 64, 64))
    border.paste(0, (8, 8, 56, 56))
    filled = np.asarray(inpaint.prefill(picture, border), dtype=int)
    edge = filled[:8].reshape(-1, 3)
    assert edge[:, 0].mean() > 120 and edge[:, 1].mean() < 80  # red spread outwards, not black
    assert np.array_equal(filled[8:56, 8:56], np.asarray(picture, dtype=int)[8:56, 8:56])


def test_outpainting_fills_the_border_at_full_strength(tiny_models):
    model = tiny_models["tiny-sd"]
    picture = _picture()
    border = _mask((0, 0, 64, 64))
    border.paste(0, (8, 8, 56, 56))
    common = dict(task="inpaint", init_image=picture, mask_image=border, strength=0.3, steps=4)
    steps = []
    from pixelserve.engine.families import family_for

    images = family_for("sd").run(model, request_for("tiny-sd", outpaint=True, **common),
                                  on_step=lambda s, t: steps.append((s, t)))
    out = np.stack([np.asarray(im, dtype=int) for im in images])
    plain = generate(model, request_for("tiny-sd", **common))
    assert steps[-1] == (4, 4)  # full strength: every step runs, whatever strength was sent
    assert np.abs(out - plain).mean() > 1
    assert _unmasked_equal([out[0], plain[0]], picture, border)
