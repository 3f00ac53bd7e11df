"""PNG encoding of an answer: Pillow (what a plain diffusers script calls), pixelserve's fast_png
with the standard zlib, and fast_png as shipped (zlib-ng), in one run.

The images: uniform noise (what the random-weight tiny models produce; it hardly compresses) and a
smooth gradient with light noise (closer to a generated picture). Median of ``--repeat`` runs.

    .venv/bin/python bench/png_encode.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib

import numpy as np
from PIL import Image

from pixelserve.core import images


def fast_png_stdlib(image: Image.Image) -> bytes:
    """fast_png with the standard library's zlib, as it was before zlib-ng (the same stream)."""
    return images.fast_png(image, deflate_with=zlib)


def pillow_png(image: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def sample_images(side: int) -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([x * 255 // side, y * 255 // side, (x + y) * 127 // side], -1)
    smooth = np.clip(base + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
    return {"noise": Image.fromarray(noise), "smooth": Image.fromarray(smooth)}


def timed(fn, image: Image.Image, repeat: int) -> tuple[float, int]:
    out = fn(image)
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(image)
        runs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(runs), len(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    coders = {"pillow": pillow_png, "fast_png stdlib zlib": fast_png_stdlib, "fast_png zlib-ng": images.fast_png}
    print("| image | pillow ms (KB) | fast_png stdlib zlib ms (KB) | fast_png zlib-ng ms (KB) | vs pillow | vs stdlib |")
    print("|---|---|---|---|---|---|")
    for side in (384, 1024):
        for kind, image in sample_images(side).items():
            got = {name: timed(fn, image, a.repeat) for name, fn in coders.items()}
            assert fast_png_stdlib(image) == images.fast_png(image)  # the same bytes, only faster
            cells = " | ".join(f"{ms:.2f} ({size // 1024})" for ms, size in got.values())
            ng = got["fast_png zlib-ng"][0]
            print(f"| {kind} {side}² | {cells} | {got['pillow'][0] / ng:.1f}x | "
                  f"{got['fast_png stdlib zlib'][0] / ng:.1f}x |")


if __name__ == "__main__":
    main()
