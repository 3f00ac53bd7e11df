"""Latency of each OctoAI engine on the tiny demo models, next to plain diffusers doing the same
denoising (same pipeline class, size and steps; ControlNet with the tiny demo ControlNet) in its
own process.

Tiny random-weight models: this measures pixelserve's own cost around the pipelines (auth,
validation, asset resolution, canny preprocessing, job records, NSFW check, JPEG encoding), not
image quality. Every OctoAI request runs the NSFW check; plain diffusers does not.

    .venv/bin/python bench/octoai_engines.py [--repeat 5] [--steps 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (64, 128)
ENGINES = {"sdxl": ("sdxl", None), "sd": ("sd", None), "controlnet-sdxl": ("sdxl", "octoai:canny_sdxl"),
           "controlnet-sd15": ("sd", "octoai:canny_sd15")}


def control_image(size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), (40, 90, 160))
    ImageDraw.Draw(img).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 200, 40))
    return img


def b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def pixelserve_rows(repeat: int, steps: int) -> dict[tuple[str, int], list[float]]:
    from fastapi.testclient import TestClient

    from pixelserve.app import create_app
    from pixelserve.db.crud.keys import create_key
    from pixelserve.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), octoai_extra_sizes=",".join(f"{s}x{s}" for s in SIZES)))
        with TestClient(app) as client:
            client.portal.call(app.state.engine.wait_ready)
            with app.state.sessions() as s:
                _, key = create_key(s, "bench", app.state.auth.secret)
            out = {}
            for engine, (_, controlnet) in ENGINES.items():
                for size in SIZES:
                    body = {"prompt": "a cat", "width": size, "height": size, "steps": steps, "seed": 1}
                    if controlnet:
                        body |= {"controlnet": controlnet, "controlnet_image": b64(control_image(size))}
                    times = []
                    for i in range(repeat + 1):
                        t = time.perf_counter()
                        r = client.post(f"/generate/{engine}", json=body, headers={"Authorization": f"Bearer {key}"})
                        assert r.status_code == 200, r.text
                        if i:
                            times.append((time.perf_counter() - t) * 1e3)
                    out[(engine, size)] = times
            return out


def plain_row(engine: str, size: int, repeat: int, steps: int) -> list[float]:
    """The same denoising with plain diffusers, on the tiny model folders (canny map by OpenCV)."""
    import cv2
    import numpy as np
    import torch
    import diffusers

    from pixelserve.engine.demo import tiny, tiny_adapters

    family, controlnet = ENGINES[engine]
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny.ensure_tiny_model(family, Path(tmp))
        kwargs = {}
        if controlnet:
            cn = diffusers.ControlNetModel.from_pretrained(tiny_adapters.ensure_tiny_controlnet(family, Path(tmp)))
            cls = diffusers.StableDiffusionXLControlNetPipeline if family == "sdxl" else \
                diffusers.StableDiffusionControlNetPipeline
            pipe = cls.from_pretrained(folder, controlnet=cn, local_files_only=True)
            edges = cv2.Canny(np.asarray(control_image(size)), 100, 200)
            kwargs["image"] = Image.fromarray(np.stack([edges] * 3, axis=-1))
        else:
            pipe = diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipe.scheduler = diffusers.DDIMScheduler.from_config(pipe.scheduler.config)  # OctoAI's default sampler
        pipe.set_progress_bar_config(disable=True)
        times = []
        for i in range(repeat + 1):
            t = time.perf_counter()
            with torch.inference_mode():
                image = pipe("a cat", width=size, height=size, num_inference_steps=steps, guidance_scale=12,
                             generator=torch.Generator().manual_seed(1), **kwargs).images[0]
            image.save(io.BytesIO(), format="JPEG", quality=90)
            if i:
                times.append((time.perf_counter() - t) * 1e3)
        return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--plain", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        engine, size = a.plain.split(":")
        print(json.dumps(plain_row(engine, int(size), a.repeat, a.steps)))
        return
    ours = pixelserve_rows(a.repeat, a.steps)
    print(f"\nOctoAI engines on the tiny demo models, CPU, {a.steps} steps, {a.repeat} runs after a warm-up: "
          "median (fastest) in ms\n")
    print(f"| {'engine':<16} | {'size':>7} | {'pixelserve':>14} | {'plain diffusers':>15} |")
    print(f"|{'-' * 18}|{'-' * 9}|{'-' * 16}|{'-' * 17}|")
    for engine, size in ours:  # each plain row in its own process (see bench/tiny_latency.py)
        out = subprocess.run([sys.executable, __file__, "--plain", f"{engine}:{size}", "--repeat", str(a.repeat),
                              "--steps", str(a.steps)], capture_output=True, text=True, check=True)
        plain = json.loads(out.stdout.strip().splitlines()[-1])
        cell = lambda t: f"{statistics.median(t):.0f} ({min(t):.0f})"  # noqa: E731  (fastest: least disturbed)
        print(f"| {engine:<16} | {f'{size}x{size}':>7} | {cell(ours[(engine, size)]):>14} | {cell(plain):>15} |")


if __name__ == "__main__":
    main()
