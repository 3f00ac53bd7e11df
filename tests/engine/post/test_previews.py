"""Live previews (engine/post/previews.py): the latent-to-RGB projection, the tiny VAE path, the
sampler's x0 estimate, and which progress callbacks get previews."""

import asyncio
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.client import report, takes_preview
from pixelserve.engine.post import previews


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_projection_gives_an_rgb_image_of_the_preview_size(family):
    latents = torch.randn(4, 320 // 8, 384 // 8)  # a 384 x 320 image's latents (C, h, w)
    size = previews.preview_size(384, 320)
    assert size == (256, 213)
    pixels = previews.render(latents, family, size)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (213, 256, 3)
    assert pixels.float().std() > 0  # not a flat colour: the latents' structure shows
    image = Image.open(io.BytesIO(previews.encode(pixels)))
    assert image.format == "JPEG" and image.size == (256, 213) and image.mode == "RGB"


def test_projection_uses_the_published_factors():
    """SD 1.5's 4th latent channel is mostly "not blue": -1 there is a light blue; SDXL has an RGB bias."""
    latents = torch.zeros(4, 2, 2)
    latents[3] = -1.0
    assert previews.render(latents, "sd", (2, 2))[0, 0].tolist() == [155, 161, 219]
    assert previews.render(torch.zeros(4, 2, 2), "sdxl", (2, 2))[0, 0].tolist() == [141, 125, 127]


def test_pixel_space_samples_are_shown_as_they_are():
    """unCLIP denoises pixels in [-1, 1]: its 3-channel samples need no projection."""
    sample = torch.full((3, 32, 32), 0.5)
    pixels = previews.render(sample, "unclip", previews.preview_size(64, 64))
    assert tuple(pixels.shape) == (64, 64, 3) and pixels.unique().tolist() == [191]
    assert not previews.can_show(torch.zeros(2, 32))  # the prior's embeddings: nothing to show


def test_the_tiny_vae_decodes_the_preview_when_configured(tiny_cache):
    from diffusers import AutoencoderTiny

    from pixelserve.engine.demo import tiny

    vae = AutoencoderTiny.from_pretrained(tiny.ensure_tiny_vae(tiny_cache / "tiny"))
    latents = torch.randn(4, 8, 8)
    with torch.inference_mode():
        decoded = previews.render(latents, "sd", (64, 64), vae=vae)
        projected = previews.render(latents, "sd", (64, 64))
    assert tuple(decoded.shape) == (64, 64, 3)
    assert not torch.equal(decoded, projected)  # the VAE's picture, not the linear map's


def test_previews_show_the_samplers_estimate_of_the_finished_latents():
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    for cls in (EulerDiscreteScheduler, DPMSolverMultistepScheduler):
        scheduler = cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        scheduler.set_timesteps(4)
        previews.keep_estimates(scheduler)
        sample, noise = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
        [after] = scheduler.step(noise, scheduler.timesteps[0], sample, return_dict=False)  # as pipelines ask
        x0 = previews.estimate(scheduler, after)
        assert x0.shape == after.shape and not torch.allclose(x0, after), cls.__name__


def test_only_callbacks_that_take_a_preview_get_one():
    got = []
    assert not takes_preview(lambda s, t: None) and not takes_preview(None)
    assert takes_preview(lambda s, t, p: None) and takes_preview(lambda s, t, p=None: None)
    report(lambda s, t: got.append((s, t)), 1, 2, b"jpeg")
    report(lambda s, t, p=None: got.append((s, t, p)), 2, 2, b"jpeg")
    assert got == [(1, 2), (2, 2, b"jpeg")]


def test_local_engine_hands_previews_to_the_callback_every_n_steps(tiny_cache, monkeypatch):
    """Each job of a stacked batch gets its own image's preview, decoded by the configured tiny VAE;
    a two-argument callback keeps working."""
    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.demo import tiny
    from pixelserve.engine.runners.local import LocalEngine

    decoders = []
    render = previews.render

    def spy(latents, family, size, vae=None):
        decoders.append(type(vae).__name__)
        return render(latents, family, size, vae)

    monkeypatch.setattr(previews, "render", spy)

    async def go():
        engine = LocalEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, preview_every=2,
                             max_batch_size=2, max_batch_delay_ms=200,
                             tiny_vae={"sd": tiny.ensure_tiny_vae(tiny_cache / "tiny")})
        await engine.start()
        await engine.wait_ready()
        seen: dict[str, list] = {"a": [], "b": []}
        plain: list = []
        try:
            def request(seed):
                return GenerationRequest(model="tiny-sd", prompt="a cat", width=64, height=48, steps=4, seeds=(seed,))

            results = await asyncio.gather(*(
                engine.submit(j, request(i), lambda s, t, p, j=j: seen[j].append((s, t, p)))
                for i, j in enumerate(seen)))
            await engine.submit("plain", request(3), lambda s, t: plain.append((s, t)))
            return results, seen, plain
        finally:
            await engine.stop()

    results, seen, plain = asyncio.run(go())
    assert max(r.timings_ms["batch_size"] for r in results) == 2  # the two jobs shared one call
    for job, steps in seen.items():
        assert [(s, t) for s, t, _ in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert [s for s, _, p in steps if p is not None] == [2, 4]
        assert all(Image.open(io.BytesIO(p)).size == (64, 48) for _, _, p in steps if p is not None)
    a, b = (np.asarray(Image.open(io.BytesIO(seen[j][-1][2]))) for j in "ab")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1  # different seeds, different previews
    assert decoders == ["AutoencoderTiny"] * 4  # 2 jobs x 2 previews; none for the plain callback
    assert plain == [(1, 4), (2, 4), (3, 4), (4, 4)]
