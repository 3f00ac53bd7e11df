"""A1111's ``tiling``: images that tile seamlessly, by circular padding in every convolution of the
UNet and the VAE for the call (a conv then sees the opposite edge beyond each border).

Calls on one model run one at a time (LoRA activation relies on it too), so the padding mode is
switched on the shared modules for the call and always switched back.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def circular(modules: list[Any], on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    import torch

    convs = [m for module in modules if module is not None for m in module.modules()
             if isinstance(m, torch.nn.Conv2d)]
    before = [m.padding_mode for m in convs]
    for m in convs:  # Conv2d pads by padding_mode at each forward: no weights change
        m.padding_mode = "circular"
    try:
        yield
    finally:
        for m, mode in zip(convs, before):
            m.padding_mode = mode
