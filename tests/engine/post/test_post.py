"""Post-processing: upscale, NSFW scores, face refinement (engine/post/)."""

import asyncio

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import FaceRefine, GenerationRequest, PostProcess
from pixelserve.engine import post
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.local import LocalEngine
from pixelserve.engine.post import face_refine, safety, upscale
from pixelserve.engine.runners.models import ModelRegistry


@pytest.fixture(scope="module")
def sd(tiny_cache):
    return ModelRegistry(demo_config().models, tiny_cache).get("tiny-sd", "cpu")


def req(**post_options):
    return GenerationRequest(model="tiny-sd", prompt="a face", width=64, height=64, steps=4, seeds=(1,),
                             post=PostProcess(**post_options))


def scene(size=(128, 96)):
    img = Image.new("RGB", size, (30, 110, 60))
    ImageDraw.Draw(img).ellipse((40, 20, 80, 70), fill=(220, 180, 150))
    return img


@pytest.mark.parametrize("size, factor, cap, expected", [
    ((64, 64), 2, 2048, (128, 128)),
    ((64, 48), 4, 2048, (256, 192)),
    ((1024, 1024), 4, 2048, (2048, 2048)),  # x4 of 1024 is capped at the spec's 2048
    ((1280, 768), 2, 2048, (2048, 1224)),  # aspect kept, multiples of 8
    ((768, 768), 2, 1000, (1000, 1000)),
])
def test_upscale_size(size, factor, cap, expected):
    assert upscale.target_size(*size, factor, cap) == tuple(v // 8 * 8 for v in expected)


def test_apply_without_options_changes_nothing(sd):
    img = scene()
    images, scores = post.apply(sd, family_for("sd"), req(), [img])
    assert images[0] is img and scores is None


def test_upscale_runs_a_detail_pass(sd):
    img = scene((64, 64))
    [big], _ = post.apply(sd, family_for("sd"), req(upscale=2), [img])
    assert big.size == (128, 128)
    resized = img.resize((128, 128), Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(big, dtype=int) - np.asarray(resized, dtype=int)).mean() > 1  # not just a resize
    [again], _ = post.apply(sd, family_for("sd"), req(upscale=2), [img])
    assert again.tobytes() == big.tobytes()  # seeded: deterministic


def test_nsfw_scores_are_in_range_and_low_for_a_plain_scene(sd):
    _, scores = post.apply(sd, family_for("sd"), req(nsfw_check=True), [scene(), Image.new("RGB", (64, 64))])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] < safety.DEFAULT_THRESHOLD


def test_real_detector_runs():
    faces = face_refine.detect_faces(scene())
    assert isinstance(faces, list)
    assert all(len(box) == 4 and 0 <= score <= 1 for box, score in faces)


def test_face_refine_touches_only_the_face_region(sd):
    img = scene()
    box, score = (40, 20, 40, 50), 0.9
    opts = FaceRefine(bbox_size_threshold=1, bbox_filter_threshold=0.5, restoration_repeats=2, weight_sft=0.3)
    out = face_refine.refine(sd, family_for("sd"), req(face_refine=opts), img.copy(), 1,
                             detector=lambda im: [(box, score)])
    left, top, right, bottom = face_refine.crop_region(box, img.size)
    a, b = np.asarray(img, dtype=int), np.asarray(out, dtype=int)
    outside = np.ones(a.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(a[outside], b[outside])  # untouched outside the face crop
    assert np.abs(a[~outside] - b[~outside]).mean() > 1  # and the face was repainted


@pytest.mark.parametrize("opts, kept", [
    (FaceRefine(bbox_filter_threshold=0.95), 0),  # detector not confident enough
    (FaceRefine(bbox_filter_threshold=0), 1),  # 0: no confidence filter
    (FaceRefine(bbox_size_threshold=0.1, bbox_filter_threshold=0), 0),  # face too large a part of the image
])
def test_face_selection(opts, kept):
    faces = [((40, 20, 40, 50), 0.9)]  # 2000 px of 12288: ratio 0.16
    assert len(face_refine.select(faces, (128, 96), opts)) == kept


def test_weight_sft_keeps_more_of_the_face():
    assert face_refine.strength(1.0) < face_refine.strength(0.5) < face_refine.strength(0.0)


def test_engine_returns_processed_images_and_scores(tiny_cache):
    async def go():
        engine = LocalEngine(demo_config().models, tiny_cache)
        await engine.start()
        await engine.wait_ready()
        res = await engine.submit("p", req(upscale=2, nsfw_check=True))
        await engine.stop()
        return res

    res = asyncio.run(go())
    assert res.images[0].size == (128, 128)
    assert len(res.nsfw_scores) == 1 and 0 <= res.nsfw_scores[0] <= 1
