"""Switching LoRAs on a torch.compile'd UNet: plain diffusers vs pixelserve's slots, one run.

The same sequence of requests (plain, four LoRAs, new weights, pairs) on the tiny SD, 64 px,
2 steps, each side in its own process (dynamo's graph cache is per process):

- plain diffusers: ``torch.compile(pipe.unet)``, each LoRA loaded once by name with
  ``load_lora_weights`` and chosen per request with ``set_adapters`` / ``disable_lora``
  (diffusers' multi-LoRA API; its LoRA methods run on a view holding the unwrapped UNet);
- pixelserve: the engine's family ``run()`` with ``PIXELSERVE_COMPILE``: LoRAs hotswapped into
  fixed slots (engine/adapters/lora_slots.py).

For each request: wall time and the graphs dynamo compiled for it. The tiny model compiles in
seconds; SDXL on a GPU takes minutes per graph, so the graph count is what carries over. Dynamo
compiles at most 8 graphs per function by default (``recompile_limit``); past that it runs the
function eagerly without a word, which is how plain diffusers' later requests stop compiling.

    .venv/bin/python bench/lora_switch.py [--out bench/results/lora-switch-cpu-<date>.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE, STEPS = 64, 2


def sequence(paths: list[str]) -> list[tuple[str, list[tuple[str, float]]]]:
    a, b, c, d = paths
    return [("plain", []), ("A", [(a, 1.0)]), ("B", [(b, 1.0)]), ("C", [(c, 1.0)]), ("D", [(d, 1.0)]),
            ("A x0.5", [(a, 0.5)]), ("A+B", [(a, 1.0), (b, 0.5)]), ("B x0.8 + C", [(b, 0.8), (c, 1.0)]),
            ("plain", []), ("D x1.2", [(d, 1.2)]), ("C+A", [(c, 0.6), (a, 0.9)]), ("B", [(b, 1.0)]),
            ("A x0.7", [(a, 0.7)]), ("plain", [])]


def make_loras(work: Path) -> list[str]:
    from safetensors.torch import load_file, save_file

    from pixelserve.engine.demo import tiny_adapters

    base = tiny_adapters.ensure_tiny_lora("sd", work)
    out = []
    for i, scale in enumerate((1.0, 1.5, -0.8, 2.0)):
        state = {k: v * scale if k.endswith("lora_up.weight") else v for k, v in load_file(base).items()}
        path = work / f"lora{i}.safetensors"
        save_file(state, str(path))
        out.append(str(path))
    return out


def side(name: str, work: Path) -> list[dict]:
    """One side's requests, timed, in this process."""
    import torch
    from torch._dynamo.utils import counters

    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.speed import optimize
    from pixelserve.engine.demo import tiny

    tiny.ensure_tiny_model("sd", work)
    optimize.use_compile_cache(work / f"compile-{name}")
    paths = make_loras(work)
    if name == "diffusers":
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(tiny.ensure_tiny_model("sd", work), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        pipe.unet = torch.compile(pipe.unet)
        view = type(pipe)(**{**pipe.components, "unet": pipe.unet._orig_mod})
        loaded: set[str] = set()

        def run(loras):
            for path, _ in loras:
                if path not in loaded:
                    view.load_lora_weights(path, adapter_name=Path(path).stem)
                    loaded.add(path)
            if loras:
                view.enable_lora()
                view.set_adapters([Path(p).stem for p, _ in loras], [w for _, w in loras])
            elif loaded:
                view.disable_lora()
            with torch.inference_mode():
                pipe("a red cube", width=SIZE, height=SIZE, num_inference_steps=STEPS,
                     generator=torch.Generator().manual_seed(3))
    else:
        from pixelserve.core.request import GenerationRequest, LoraRef
        from pixelserve.engine.families import family_for
        from pixelserve.engine.runners.models import ModelRegistry

        model = ModelRegistry(demo_config().models, work).get("tiny-sd", "cpu")
        optimize.apply(model.pipe, "cpu", optimize.Optimizations(compile=True))

        def run(loras):
            request = GenerationRequest(model="tiny-sd", prompt="a red cube", width=SIZE, height=SIZE, steps=STEPS,
                                        seeds=(3,), loras=tuple(LoraRef(Path(p).stem, p, w) for p, w in loras))
            family_for("sd").run(model, request)

    rows = []
    for label, loras in sequence(paths):
        graphs = counters["stats"]["unique_graphs"]
        t = time.perf_counter()
        run(loras)
        rows.append({"request": label, "ms": (time.perf_counter() - t) * 1e3,
                     "graphs_compiled": counters["stats"]["unique_graphs"] - graphs})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(side(a.side, a.work)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = {}
    with tempfile.TemporaryDirectory() as work:
        for name in ("diffusers", "pixelserve"):
            out = subprocess.run([sys.executable, __file__, "--side", name, "--work", work], env=env,
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{name} side failed:\n{out.stderr[-3000:]}")
            got[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'request':14s} | {'diffusers ms':>12s} | graphs | {'pixelserve ms':>13s} | graphs")
    for d, p in zip(got["diffusers"], got["pixelserve"]):
        print(f"{d['request']:14s} | {d['ms']:12.1f} | {d['graphs_compiled']:6d} | {p['ms']:13.1f} | "
              f"{p['graphs_compiled']:6d}")
    totals = {k: {"ms": sum(r["ms"] for r in v), "graphs": sum(r["graphs_compiled"] for r in v)}
              for k, v in got.items()}
    print(f"{'total':14s} | {totals['diffusers']['ms']:12.1f} | {totals['diffusers']['graphs']:6d} | "
          f"{totals['pixelserve']['ms']:13.1f} | {totals['pixelserve']['graphs']:6d}")
    date = datetime.date.today().isoformat()
    out = a.out or ROOT / "bench" / "results" / f"lora-switch-cpu-{date}.json"
    out.write_text(json.dumps({"device": f"cpu ({platform.machine()}, {os.cpu_count()} cores)", "date": date,
                               "note": f"tiny-sd, torch.compile'd UNet, {SIZE} px, {STEPS} steps",
                               "totals": totals, "requests": got}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
