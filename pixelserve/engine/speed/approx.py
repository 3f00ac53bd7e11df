"""Opt-in approximations. Each one CHANGES THE IMAGE; all are off by default and labelled so in
settings and the README. (FP8 linear layers, the third, are in engine/speed/optimize.py beside the
other layer-level switches.)

- Step caching, DeepCache-style (``step_cache_interval`` N >= 2): the UNet's deep features are
  computed every N-th evaluation and reused in between, where only the shallowest branch runs.
  Uses the DeepCache authors' own helper (the ``DeepCache`` package); tests/engine/speed/test_approx.py
  states how far the image moves and counts the deep-block evaluations saved.
- A tiny VAE (``tiny_vae``: diffusers ``AutoencoderTiny``, TAESD/TAESDXL weights from a local
  folder): decodes (and encodes) latents much faster than the full VAE at some loss of detail.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

log = logging.getLogger(__name__)

#: Families whose UNet has the down/mid/up block layout DeepCache's helper wraps.
STEP_CACHE_FAMILIES = ("sd", "sdxl")


def _helper_class():
    from DeepCache import DeepCacheSDHelper

    class UNetCallCache(DeepCacheSDHelper):
        """DeepCache's helper, counting UNet evaluations instead of looking the timestep up.

        The helper finds the step by looking the UNet's timestep up in ``pipe.scheduler``; the
        families build a fresh pipeline and scheduler per call, which it cannot see. For samplers
        that evaluate the UNet once per step (CFG halves run in one batched call) the count is
        the step index, so the uniform schedule is the same.
        """

        def __init__(self, unet: Any):
            super().__init__(SimpleNamespace(unet=unet))
            self.calls = 0

        def wrap_unet_forward(self) -> None:
            self.function_dict["unet_forward"] = self.pipe.unet.forward

            def wrapped_forward(*args, **kwargs):
                self.cur_timestep = self.calls
                self.calls += 1
                return self.function_dict["unet_forward"](*args, **kwargs)

            self.pipe.unet.forward = wrapped_forward

    return UNetCallCache


@contextlib.contextmanager
def step_cache(pipe: Any, interval: int) -> Iterator[None]:
    """Within the block, ``pipe.unet`` recomputes its deep features only every ``interval`` evaluations.

    The UNet is shared by the device's calls, which run one at a time (engine/runners/local.py), so
    wrapping it for one call is safe; it is unwrapped however the call ends.
    """
    if interval < 2:
        yield
        return
    helper = _helper_class()(pipe.unet)
    helper.set_params(cache_interval=interval, cache_branch_id=0)
    helper.enable()
    try:
        yield
    finally:
        helper.disable()


def load_tiny_vae(path: Path, dtype: Any, device: str) -> Any:
    """An AutoencoderTiny from a local diffusers folder (safetensors only; nothing downloaded)."""
    from diffusers import AutoencoderTiny

    from pixelserve.engine.weights.formats import WeightsFormatError

    path = Path(path)
    if not (path / "config.json").is_file() or not list(path.glob("*.safetensors")):
        raise WeightsFormatError(f"tiny VAE {path} is not a diffusers AutoencoderTiny folder with safetensors weights")
    vae = AutoencoderTiny.from_pretrained(path, torch_dtype=dtype, local_files_only=True, use_safetensors=True)
    return vae.to(device)


def use_tiny_vae(pipe: Any, vae: Any) -> None:
    """Every task pipeline of this model decodes (and encodes) with ``vae`` from now on."""
    pipe.register_modules(vae=vae)
