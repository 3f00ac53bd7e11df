"""Each of the SDK's 21 sampler names runs on the tiny SD model (64 px, 2 steps)."""

import pytest

from pixelserve.dialects.octoai.protocol import SAMPLERS
from tests.api.octoai.helpers import small


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sampler_runs(octo, sampler):
    r = octo(small(sampler=sampler, seed=1, steps=1))  # the fewest steps: the edge most samplers trip on
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["image_b64"]


@pytest.mark.parametrize("engine", ["sd", "sdxl"])
def test_img2img_strength_that_leaves_no_step_is_422(octo, engine):
    from tests.api.octoai.helpers import b64_image, locs

    assert locs(octo(small(init_image=b64_image(), strength=0.4, steps=2), engine=engine)) == [["body", "strength"]]
    assert octo(small(init_image=b64_image(), strength=0.5, steps=2), engine=engine).status_code == 200
