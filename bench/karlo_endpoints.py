"""Latency of each Karlo endpoint on the tiny demo models, next to plain diffusers doing the
same denoising (same pipeline class, size and steps) in its own process.

Tiny random-weight models: this measures pixelserve's own cost around the pipelines (auth,
validation, decoding inputs, job records, post-processing, encoding, storage), not image quality.

    .venv/bin/python bench/karlo_endpoints.py [--repeat 5]
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


def b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def inputs():
    img = Image.new("RGB", (384, 384), (40, 90, 160))
    ImageDraw.Draw(img).ellipse((100, 100, 280, 280), fill=(230, 200, 40))
    mask = Image.new("RGB", (384, 384), "white")
    ImageDraw.Draw(mask).rectangle((128, 128, 256, 256), fill="black")
    return b64(img), b64(mask)


def cases():
    image, mask = inputs()
    base = {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10,
            "return_type": "base64_string", "image_format": "png", "seed": [1]}
    return {
        "t2i v2.0 384px (tiny-sd)": ("t2i", base, ("txt2img", 384)),
        "t2i v2.1 768px (tiny-sdxl)": ("t2i", {**base, "version": "v2.1", "width": 768, "height": 768},
                                       ("txt2img-xl", 768)),
        "t2i v2.0 + upscale x2": ("t2i", {**base, "upscale": True, "scale": 2}, None),
        "t2i v2.0 + nsfw_checker": ("t2i", {**base, "nsfw_checker": True}, None),
        "t2i v2.0 + face_refiner": ("t2i", {**base, "face_refiner": {"bbox_filter_threshold": 0}}, None),
        "variations v2.0 384px (img2img 0.75)": ("variations", {k: v for k, v in base.items() if k != "prompt"}
                                                 | {"image": image}, ("img2img", 384)),
        "inpainting 384px": ("inpainting", {"image": image, "mask": mask, "num_inference_steps": 10,
                                            "return_type": "base64_string", "image_format": "png", "seed": [1]},
                             ("inpaint", 384)),
    }


def pixelserve_rows(repeat: int) -> dict[str, list[float]]:
    from fastapi.testclient import TestClient

    from pixelserve.app import create_app
    from pixelserve.db.crud.keys import create_key
    from pixelserve.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp)))
        with TestClient(app) as client:
            client.portal.call(app.state.engine.wait_ready)
            with app.state.sessions() as s:
                _, key = create_key(s, "bench", app.state.auth.secret)
            headers = {"Authorization": f"KakaoAK {key}"}
            out = {}
            for name, (endpoint, body, _) in cases().items():
                times = []
                for i in range(repeat + 1):
                    t = time.perf_counter()
                    r = client.post(f"/v2/inference/karlo/{endpoint}", json=body, headers=headers)
                    assert r.status_code == 200, r.text
                    if i:
                        times.append((time.perf_counter() - t) * 1e3)
                out[name] = times
            return out


def plain_row(kind: str, size: int, repeat: int) -> list[float]:
    """The same denoising with plain diffusers, on the tiny model folders."""
    import torch
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, DiffusionPipeline

    from pixelserve.engine.demo import tiny

    with tempfile.TemporaryDirectory() as tmp:
        family = "sdxl" if kind.endswith("-xl") else "sd"
        folder = tiny.ensure_tiny_model(family, Path(tmp))
        image = Image.open(io.BytesIO(base64.b64decode(inputs()[0]))).convert("RGB")
        mask = Image.open(io.BytesIO(base64.b64decode(inputs()[1]))).convert("L")
        if kind.startswith("txt2img"):
            pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
            call = lambda: pipe("a cat", width=size, height=size, num_inference_steps=10)  # noqa: E731
        elif kind == "img2img":
            pipe = AutoPipelineForImage2Image.from_pretrained(folder, local_files_only=True)
            call = lambda: pipe("", image=image, strength=0.75, num_inference_steps=10)  # noqa: E731
        else:
            pipe = AutoPipelineForInpainting.from_pretrained(folder, local_files_only=True)
            call = lambda: pipe("", image=image, mask_image=mask, strength=1.0, width=size, height=size,  # noqa: E731
                                num_inference_steps=10)
        pipe.set_progress_bar_config(disable=True)
        times = []
        for i in range(repeat + 1):
            t = time.perf_counter()
            with torch.inference_mode():
                call().images[0].save(io.BytesIO(), format="PNG")
            if i:
                times.append((time.perf_counter() - t) * 1e3)
        return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--plain", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        kind, size = a.plain.split(":")
        print(json.dumps(plain_row(kind, int(size), a.repeat)))
        return
    ours = pixelserve_rows(a.repeat)
    print(f"\nKarlo endpoints on the tiny demo models, CPU, median of {a.repeat} after a warm-up (ms)\n")
    print(f"| {'request':<38} | {'pixelserve':>10} | {'plain diffusers':>15} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 17}|")
    for name, (_, _, plain) in cases().items():
        other = ""
        if plain is not None:  # each plain row in its own process (see bench/tiny_latency.py)
            out = subprocess.run([sys.executable, __file__, "--plain", f"{plain[0]}:{plain[1]}",
                                  "--repeat", str(a.repeat)], capture_output=True, text=True, check=True)
            other = f"{statistics.median(json.loads(out.stdout.strip().splitlines()[-1])):.0f}"
        print(f"| {name:<38} | {statistics.median(ours[name]):10.0f} | {other:>15} |")


if __name__ == "__main__":
    main()
