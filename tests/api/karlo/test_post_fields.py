"""upscale / scale, nsfw_checker and face_refiner through the Karlo API."""

import pytest

from tests.api.karlo.helpers import post_base64, small
from tests.api.karlo.images import decode, encode, mask_with_black_box, picture


def b64(karlo, path="/v2/inference/karlo/t2i", **fields):
    return post_base64(karlo, path, fields)["images"]


@pytest.mark.parametrize("scale, side", [(2, 768), (4, 1536)])
def test_upscale(karlo, scale, side):
    [im] = b64(karlo, **small(upscale=True, scale=scale, seed=[1]))
    assert decode(im["image"]).size == (side, side)


def test_scale_without_upscale_is_ignored(karlo):
    [im] = b64(karlo, **small(scale=4, seed=[1]))
    assert decode(im["image"]).size == (384, 384)


def test_nsfw_checker_fills_both_fields(karlo):
    images = b64(karlo, **small(nsfw_checker=True, samples=2, seed=[1, 2]))
    for im in images:
        assert isinstance(im["nsfw_score"], float) and 0 <= im["nsfw_score"] <= 1
        assert im["nsfw_content_detected"] is (im["nsfw_score"] >= 0.5)


def test_face_refiner_is_accepted_on_every_endpoint(karlo):
    face = {"bbox_size_threshold": 1, "bbox_filter_threshold": 0.5, "restoration_repeats": 2, "weight_sft": 0.5}
    assert len(b64(karlo, **small(face_refiner=face))) == 1
    assert len(b64(karlo, path="/v2/inference/karlo/variations", version="v2.0", image=encode(picture((64, 64))),
                   width=384, height=384, num_inference_steps=10, face_refiner=face)) == 1
    [im] = b64(karlo, path="/v2/inference/karlo/inpainting", image=encode(picture()),
               mask=encode(mask_with_black_box()), num_inference_steps=10, face_refiner=face, upscale=True,
               nsfw_checker=True)
    assert decode(im["image"]).size == (192, 128) and im["nsfw_score"] is not None
