"""``tiling``: circular padding for the call (engine/families/tiling.py). With it the VAE decoder is
equivariant to circular shifts (what makes the picture tile: its right edge continues its left);
afterwards every convolution pads as before."""

import torch
from diffusers import AutoencoderKL

from pixelserve.engine.families.tiling import circular


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1).eval()


def test_circular_padding_makes_the_decoder_wrap_around_and_is_undone():
    vae = tiny_vae()
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    shift = 3
    with torch.inference_mode():
        with circular([vae], True):
            out = vae.decode(z).sample
            rolled = vae.decode(torch.roll(z, shift, dims=3)).sample
        scale = out.shape[-1] // z.shape[-1]
        assert torch.allclose(torch.roll(out, shift * scale, dims=3), rolled, atol=1e-5)
        plain = vae.decode(z).sample
        plain_rolled = vae.decode(torch.roll(z, shift, dims=3)).sample
    assert not torch.allclose(torch.roll(plain, shift * scale, dims=3), plain_rolled, atol=1e-3)
    assert {m.padding_mode for m in vae.modules() if isinstance(m, torch.nn.Conv2d)} == {"zeros"}


def test_off_changes_nothing():
    vae = tiny_vae()
    with circular([vae], False):
        assert {m.padding_mode for m in vae.modules() if isinstance(m, torch.nn.Conv2d)} == {"zeros"}
