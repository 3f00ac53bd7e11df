"""Live previews: every N denoising steps of a job, a small JPEG of the image it is heading for.

- What is shown: the sampler's estimate of the finished latents at that step (``pred_original_sample``,
  or DPM-Solver++/UniPC's last x0 prediction), as ComfyUI and A1111 preview; the current noisy
  latents only for a sampler that gives no estimate.
- How latents become RGB, with no extra weights: a fixed linear map of the 4 latent channels per
  family (FACTORS), or, when PIXELSERVE_TINY_VAE configures one for the family, the model's
  AutoencoderTiny. unCLIP (Karlo) denoises pixels, not latents: its decoder and super-resolution
  samples are shown as they are; its prior (an embedding) has nothing to show.
- Cheap: one image per job, projected and resized (<= MAX_SIDE px) on the device; the copy to the
  host does not wait for the device (non_blocking, then a CUDA event), and the JPEG is encoded and
  handed over on another thread. The denoising loop never waits for a preview.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import Executor, Future
from typing import Any, Callable

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

#: A preview's longer side at most (the issue's "<= 256 px"); never larger than the image itself.
MAX_SIDE = 256
JPEG_QUALITY = 80

#: Latent channel -> (R, G, B) factors and an RGB bias, applied to the scaled latents the UNet denoises
#: (the space of diffusers' step callback latents), giving RGB in about [-1, 1]. The numbers are
#: ComfyUI's ``latent_rgb_factors`` / ``latent_rgb_factors_bias`` (comfy/latent_formats.py, classes SD15
#: and SDXL; used by its latent_preview.py "Latent2RGB" previewer), least-squares fits of each family's
#: VAE decoder, the same kind of map as A1111's "Approx cheap" live preview. SD 2.x shares SD 1.5's VAE.
FACTORS: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[float, float, float]]] = {
    "sd": (((0.3512, 0.2297, 0.3227),
            (0.3250, 0.4974, 0.2350),
            (-0.2829, 0.1762, 0.2721),
            (-0.2120, -0.2616, -0.7177)), (0.0, 0.0, 0.0)),
    "sdxl": (((0.3651, 0.4232, 0.4341),
              (-0.2533, -0.0042, 0.1068),
              (0.1076, 0.1111, -0.0362),
              (-0.3165, -0.2492, -0.2188)), (0.1084, -0.0175, -0.0011)),
}

#: The factors as tensors, per (family, device): made once, since building one from Python lists on a
#: GPU is a copy from pageable memory, which waits for the device.
_factors: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def preview_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a preview of a ``width`` x ``height`` image: the longer side MAX_SIDE at most."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def can_show(latents: Any) -> bool:
    """A batch of images: 4 latent channels (sd, sdxl) or 3 pixel channels (unclip)."""
    return isinstance(latents, torch.Tensor) and latents.ndim == 4 and latents.shape[1] in (3, 4)


def to_rgb(latents: torch.Tensor, family: str, vae: Any = None) -> torch.Tensor:
    """One image's latents (C, h, w) as RGB (3, H, W) in about [-1, 1], float32, on their device."""
    if latents.shape[0] == 3:  # pixel space (unclip): the sample is the picture
        return latents.float()
    if vae is not None:  # the tiny VAE decodes the scaled latents as the pipeline's own decode does
        scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        return vae.decode(latents[None].to(vae.dtype) / scale).sample[0].float()
    key = (family, str(latents.device))
    if key not in _factors:
        factors, bias = FACTORS[family]
        _factors[key] = (torch.tensor(factors, dtype=torch.float32, device=latents.device),
                         torch.tensor(bias, dtype=torch.float32, device=latents.device))
    weight, bias = _factors[key]
    return torch.einsum("chw,cr->rhw", latents.float(), weight) + bias[:, None, None]


def render(latents: torch.Tensor, family: str, size: tuple[int, int], vae: Any = None) -> torch.Tensor:
    """One image's latents as the preview's pixels: uint8 (H, W, 3), ``size`` = (W, H), on their device."""
    rgb = to_rgb(latents, family, vae)
    width, height = size
    if rgb.shape[1:] != (height, width):
        rgb = F.interpolate(rgb[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]
    return rgb.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous()


def encode(pixels: Any) -> bytes:
    """uint8 (H, W, 3) pixels on the host as JPEG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels).save(
        out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


# -- the sampler's estimate of the finished latents ------------------------------------------------
def keep_estimates(scheduler: Any) -> None:
    """Make this call's own scheduler keep each step's ``pred_original_sample`` (once per scheduler).

    The pipelines ask ``step`` for a tuple, whose layout varies by sampler; the wrapper asks for the
    output object and hands the pipeline the tuple it expects.
    """
    if scheduler is None or "_preview_x0" in vars(scheduler):
        return
    scheduler._preview_x0 = None
    step = scheduler.step

    def step_keeping_estimate(*args, return_dict: bool = True, **kwargs):
        out = step(*args, return_dict=True, **kwargs)
        scheduler._preview_x0 = getattr(out, "pred_original_sample", None)
        return out if return_dict else (out.prev_sample,)

    scheduler.step = step_keeping_estimate


def estimate(scheduler: Any, latents: torch.Tensor) -> torch.Tensor:
    """The sampler's estimate of the finished latents after this step, else ``latents``."""
    if scheduler is None:
        return latents
    x0 = vars(scheduler).get("_preview_x0")
    if isinstance(x0, torch.Tensor) and x0.shape == latents.shape:
        return x0
    config = getattr(scheduler, "config", {})
    outputs = getattr(scheduler, "model_outputs", None)
    # DPM-Solver++ and UniPC (predict_x0) keep their x0 predictions, newest last.
    if outputs and (str(config.get("algorithm_type", "")).endswith("dpmsolver++") or config.get("predict_x0")):
        last = outputs[-1]
        if isinstance(last, torch.Tensor) and last.shape == latents.shape:
            return last
    return latents


class JobPreviews:
    """One job's previews and progress reports, in step order.

    The family's step callback calls ``latents`` (its preview hook) and then ``step`` (its on_step),
    on the device thread. Every report of the job goes through ``executor`` (one thread, first in
    first out), so that a step with a preview is not overtaken by the next one; ``finish`` waits for
    the last, so that no report comes after the job's result.
    """

    def __init__(self, family: str, every: int, size: tuple[int, int],
                 deliver: Callable[[int, int, bytes | None], None], executor: Executor, *,
                 vae: Any = None, index: int = 0):
        self.family = family
        self.every = every
        self.size = size
        self.deliver = deliver
        self.executor = executor
        self.vae = vae
        self.index = index  # the job's first image in the batch's latents
        self.enabled = True
        self._pending: tuple[int, torch.Tensor, Any] | None = None
        self._last: Future | None = None

    def latents(self, step: int, latents: Any, scheduler: Any = None) -> None:
        if not self.enabled:
            return
        try:
            keep_estimates(scheduler)
            if step % self.every or not can_show(latents) or self.index >= latents.shape[0]:
                return
            x0 = estimate(scheduler, latents)[self.index]
            pixels = render(x0, self.family, self.size, self.vae)
            event = None
            if pixels.is_cuda:  # the copy is queued behind the step's work; the encoder thread waits for it
                pixels = pixels.to("cpu", non_blocking=True)
                event = torch.cuda.Event()
                event.record()
            elif pixels.device.type != "cpu":
                pixels = pixels.cpu()
            self._pending = (step, pixels, event)
        except Exception:  # a preview never fails a job: this job goes on without them
            log.exception("live preview failed; no more previews for this job")
            self.enabled = False

    def step(self, step: int, total: int) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] != step:
            pending = None
        self._last = self.executor.submit(self._report, step, total, pending)

    def _report(self, step: int, total: int, pending) -> None:
        preview = None
        if pending is not None:
            _, pixels, event = pending
            try:
                if event is not None:
                    event.synchronize()
                preview = encode(pixels)
            except Exception:
                log.exception("encoding a live preview failed")
        self.deliver(step, total, preview)

    def finish(self) -> None:
        """Returns once every report of the job is handed over."""
        last, self._last = self._last, None
        if last is not None:
            try:
                last.result()
            except Exception:
                log.exception("delivering a progress report failed")
