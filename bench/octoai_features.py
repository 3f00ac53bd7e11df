"""Time of one tiny-model request per OctoAI engine feature (64 px, 2 steps), sd and sdxl.

For each feature: the first request (it loads the adapter, ControlNet, override ...) and the
median of ``--repeat`` warm requests through the family's ``run()``, beside plain diffusers'
own txt2img call on the same tiny model in the same process (the baseline row) and pixelserve's
plain request. Everything runs in one thread, one after another: the numbers compare what each
feature adds around the same denoising work, not real-model speed (tiny random-weight models).

    .venv/bin/python bench/octoai_features.py [--repeat 5] [--family sd sdxl]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import (ControlNetRef, GenerationRequest, ImagePromptRef, LoraRef,
                                     TextualInversionRef)
from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.models import ModelRegistry

SIZE, STEPS = 64, 2


def timed(fn, repeat: int) -> tuple[float, float]:
    t = time.perf_counter()
    fn()
    first = (time.perf_counter() - t) * 1e3
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        warm.append((time.perf_counter() - t) * 1e3)
    return first, statistics.median(warm)


def features(family: str, adapters: Path, folder: Path, refiner: Path | None) -> list[tuple[str, str, dict]]:
    """(feature, model id, request fields) rows."""
    picture = Image.new("RGB", (SIZE, SIZE), (30, 90, 160))
    picture.paste((220, 200, 40), (16, 16, 48, 48))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (24, 24, 36, 36))
    border = Image.new("L", (SIZE, SIZE), 255)
    border.paste(0, (8, 8, 56, 56))
    lora = str(tiny_adapters.ensure_tiny_lora(family, adapters))
    ti = str(tiny_adapters.ensure_tiny_textual_inversion(family, adapters))
    rows = [
        ("plain request", "m", {}),
        ("prompt weighting", "m", {"prompt": "a (red cube:1.4) on a [table]", "prompt_weighting": True}),
        ("clip_skip 1", "m", {"clip_skip": 1}),
        ("1 LoRA", "m", {"loras": (LoraRef("a", lora, 0.8),)}),
        ("textual inversion", "m", {"prompt": "a <t> cube", "textual_inversions": (TextualInversionRef("t", ti, "<t>"),)}),
        ("VAE override", "m", {"vae": str(tiny_adapters.ensure_tiny_vae(family, adapters))}),
        ("checkpoint override", "m", {"checkpoint": str(folder)}),
        ("ControlNet canny", "m", {"controlnet": ControlNetRef(
            "c", str(tiny_adapters.ensure_tiny_controlnet(family, adapters)), picture)}),
        ("inpaint_full_res", "m", {"task": "inpaint", "init_image": picture, "mask_image": mask, "strength": 1.0,
                                   "inpaint_full_res": True, "inpaint_full_res_padding": 8}),
        ("outpainting", "m", {"task": "inpaint", "init_image": picture, "mask_image": border, "outpaint": True}),
        ("image prompt (IP-Adapter)", "ip", {"image_prompt": ImagePromptRef((picture,), scale=0.8)}),
    ]
    if family == "sd":
        rows.insert(2, ("long prompt (3 chunks)", "m", {"prompt": "red cube " * 25, "prompt_weighting": True}))
    else:
        rows.insert(2, ("prompt_2", "m", {"prompt_2": "a blue sphere"}))
        if refiner is not None:
            rows.append(("refiner, high_noise_frac 0.6", "xl-refined", {"high_noise_frac": 0.6}))
    return rows


def run_family(family: str, cache: Path, repeat: int) -> list[tuple]:
    import diffusers

    folder = tiny.ensure_tiny_model(family, cache / "tiny")
    adapters = cache / "adapters"
    ip = tiny_adapters.ensure_tiny_ip_adapter(family, adapters)
    refiner = tiny.ensure_tiny_model("sdxl-refiner", cache / "tiny") if family == "sdxl" else None
    specs = {
        "m": ModelSpec("m", family, folder),
        "ip": ModelSpec("ip", family, folder, ip_adapter=ip / tiny_adapters.IP_ADAPTER_FILE,
                        image_encoder=ip / tiny_adapters.IMAGE_ENCODER_FOLDER),
    }
    if refiner is not None:
        specs["xl-refined"] = ModelSpec("xl-refined", family, folder, refiner=refiner)
    registry = ModelRegistry(specs, cache)
    run = family_for(family).run
    out = []

    cls = diffusers.StableDiffusionPipeline if family == "sd" else diffusers.StableDiffusionXLPipeline
    plain = cls.from_pretrained(folder, local_files_only=True)
    plain.set_progress_bar_config(disable=True)

    def baseline():
        with torch.inference_mode():
            plain("a red cube on a table", num_inference_steps=STEPS, width=SIZE, height=SIZE,
                  generator=torch.Generator().manual_seed(1))

    out.append((family, "plain diffusers (baseline)", *timed(baseline, repeat)))
    for name, model_id, fields in features(family, adapters, folder, refiner):
        model = registry.get(model_id, "cpu")
        request = GenerationRequest(model=model_id, prompt="a red cube on a table", width=SIZE, height=SIZE,
                                    steps=STEPS, seeds=(1,)).with_(**fields)
        out.append((family, name, *timed(lambda: run(model, request), repeat)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--family", nargs="+", default=["sd", "sdxl"], choices=["sd", "sdxl"])
    args = parser.parse_args()
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.family:
            rows += run_family(family, Path(tmp), args.repeat)
    print(f"\ntiny models, {SIZE}x{SIZE}, {STEPS} steps, cpu, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; first = first request (loads what it needs), "
          f"warm = median of {args.repeat}")
    print(f"| {'family':6} | {'feature':30} | {'first ms':>9} | {'warm ms':>8} |")
    print(f"|{'-' * 8}|{'-' * 32}|{'-' * 11}|{'-' * 10}|")
    for family, name, first, warm in rows:
        print(f"| {family:6} | {name:30} | {first:9.1f} | {warm:8.1f} |")


if __name__ == "__main__":
    main()
