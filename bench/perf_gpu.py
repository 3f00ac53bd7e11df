"""The GPU rows of bench/perf.py: full-size SD 1.5 and SDXL architectures with random weights.

The architectures come from the configs pixelserve ships (pixelserve/engine/weights/configs, the CLIP
tokenizer from open_clip's vocabulary): no hub. Weights are random (speed does not depend on
their values), built on the device, saved once as a diffusers folder of fp16 safetensors, and
loaded by both sides: plain diffusers (``from_pretrained``, fp16, one call) and the pixelserve
engine (its registry, fp16, channels_last, fused QKV, torch.compile with the persistent cache,
warm-up, dynamic batching), each in its own process.

- ``sd15_b1_latency`` / ``sdxl_b1_latency``: one image, 512 px 50 steps / 1024 px 30 steps, s.
  With torchao installed on a GPU of capability 8.9+, the SDXL row also gives the FP8 figure.
- ``sd15_throughput`` / ``sdxl_throughput``: plain diffusers generating batches of 4 vs 16
  concurrent single-image requests through the engine (batches up to 8), img/s.

``tiny=True`` runs the same code on the tiny demo models at 64 px, 4 steps, on whatever device
there is (fp32 and no compile on CPU): the smoke test that keeps this path working without a GPU.
bench/perf_fullsize.py runs these parts on a CPU with another shape and the engine's per-device
default optimisations (``server_defaults``); both sides count minor page faults per image.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

from bench.perf_common import minor_faults, p50, pct, peak_gpu_mib, peak_rss_mib, tiny_folder

FAMILY = {"sdxl_b1_latency": "sdxl", "sdxl_throughput": "sdxl", "sd15_b1_latency": "sd", "sd15_throughput": "sd"}
SHAPES = {"sd": (512, 50), "sdxl": (1024, 30)}  # size, steps
TINY_SHAPES = {"sd": (64, 4), "sdxl": (64, 4)}
TARGETS = {"sdxl_b1_latency": ">= 3x (fp16), >= 4.5x with FP8", "sdxl_throughput": ">= 1.4x",
           "sd15_b1_latency": ">= 4x", "sd15_throughput": ">= 2.7x"}
PLAIN_BATCH = 4  # the throughput baseline: plain diffusers at batch 4
CONCURRENT, ENGINE_BATCH = 16, 8


def _device_and_dtype():
    import torch

    return ("cuda", torch.float16) if torch.cuda.is_available() else ("cpu", torch.float32)


def model_folder(cache: Path, family: str, tiny: bool) -> Path:
    """The tiny demo model, or the family's full-size architecture with random fp16 weights (built once)."""
    if tiny:
        return tiny_folder(cache, family)
    folder = cache / f"random-{family}-fp16"
    if (folder / "model_index.json").is_file():
        return folder
    import diffusers
    import torch

    from pixelserve.engine.weights.single_file import assemble_config

    config = assemble_config(family, cache / "single_file")
    index = json.loads((config / "model_index.json").read_text())
    device, dtype = _device_and_dtype()
    parts = {}
    torch.manual_seed(0)
    with torch.device(device):  # random init of SDXL's 2.6B UNet parameters takes minutes on a CPU
        for name, value in index.items():
            if name.startswith("_") or not isinstance(value, list) or value[0] is None:
                continue
            library, class_name = value
            cls = getattr(importlib.import_module(library), class_name)
            sub = config / name
            if class_name == "CLIPTokenizer":
                parts[name] = cls.from_pretrained(sub)
            elif library == "transformers":
                parts[name] = cls(cls.config_class.from_pretrained(sub)).to(dtype)
            elif "Scheduler" in class_name:
                parts[name] = cls.from_config(cls.load_config(sub))
            else:
                parts[name] = cls.from_config(cls.load_config(sub)).to(dtype)
    pipe_cls = getattr(diffusers, index["_class_name"])
    params = inspect.signature(pipe_cls.__init__).parameters
    extra = {k: None for k in ("safety_checker", "feature_extractor", "image_encoder") if k in params}
    if "requires_safety_checker" in params:
        extra["requires_safety_checker"] = False
    pipe = pipe_cls(**parts, **extra)
    tmp = folder.with_name(folder.name + ".building")
    pipe.save_pretrained(tmp, safe_serialization=True)
    tmp.rename(folder)
    del pipe, parts
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def _peak(device: str) -> float:
    return peak_gpu_mib() if device == "cuda" else peak_rss_mib()


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# -- parts, each run in its own process ----------------------------------------------------------
def part_gpu_build(cache: Path, family: str, tiny: bool) -> dict:
    return {"folder": str(model_folder(cache, family, tiny))}


def wait_turn(turns: bool) -> None:
    """``turns``: the measurement waits for a line on stdin (bench/perf_common.Turns alternates two parts)."""
    if turns:
        print('{"waiting": true}', flush=True)  # warmed up, idle: the first turn waits for every part's
        sys.stdin.readline()


def report_turn(turns: bool, r: int, seconds: float) -> None:
    if turns:
        print(json.dumps({"turn": r, "s": seconds}), flush=True)


def part_gpu_plain(cache: Path, family: str, mode: str, repeat: int, tiny: bool, shape: list | None = None,
                   batch: int = PLAIN_BATCH, turns: bool = False) -> dict:
    """Plain diffusers: ``from_pretrained`` in fp16 on the GPU, one pipeline call per measurement.
    ``shape``: (size, steps) instead of the family's; ``batch``: the throughput mode's batch size;
    ``turns``: each measurement when stdin says (wait_turn)."""
    import torch
    from diffusers import DiffusionPipeline

    device, dtype = _device_and_dtype()
    size, steps = shape or (TINY_SHAPES if tiny else SHAPES)[family]
    pipe = DiffusionPipeline.from_pretrained(model_folder(cache, family, tiny), torch_dtype=dtype,
                                             local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    n = 1 if mode == "latency" else batch

    def call(seed: int):
        gens = [torch.Generator(device).manual_seed(seed + i) for i in range(n)]
        with torch.inference_mode():
            pipe([f"a cat number {i}" for i in range(n)], width=size, height=size, num_inference_steps=steps,
                 generator=gens)
        _sync(device)

    call(0)
    times = []
    faults = minor_faults()
    for r in range(repeat):
        wait_turn(turns)
        t = time.perf_counter()
        call(r)
        times.append(time.perf_counter() - t)
        report_turn(turns, r, times[-1])
    return {"s": statistics.median(times), "p99": pct(times, 0.99), "img_s": n / statistics.median(times),
            "peak_mib": _peak(device), "faults_per_image": (minor_faults() - faults) / (repeat * n)}


def part_gpu_engine(cache: Path, family: str, mode: str, repeat: int, tiny: bool, fp8: bool = False,
                    compile_mode: str | None = None, shape: list | None = None, concurrent: int = CONCURRENT,
                    engine_batch: int = ENGINE_BATCH, server_defaults: bool = False, turns: bool = False) -> dict:
    """The pixelserve engine as the server runs it: registry load, exact optimisations, warm-up, batching.
    ``server_defaults``: the optimisations a server on this device has by default (settings left
    unset) instead of the GPU rows' (fused QKV, compile on CUDA)."""
    from pixelserve.core.model_config import ModelSpec
    from pixelserve.core.request import GenerationRequest
    from pixelserve.engine.runners.local import LocalEngine

    device, _ = _device_and_dtype()
    size, steps = shape or (TINY_SHAPES if tiny else SHAPES)[family]
    spec = ModelSpec("m", family, model_folder(cache, family, tiny))
    # compiling on a CPU takes minutes; the CPU rows measure it on their own
    compile_ = device == "cuda" and not server_defaults
    fuse_qkv = None if server_defaults else True

    def request(i: int) -> GenerationRequest:
        return GenerationRequest(model="m", prompt=f"a cat number {i}", width=size, height=size, steps=steps,
                                 guidance_scale=7.5, seeds=(i,))

    async def go():
        t0 = time.perf_counter()
        engine = LocalEngine({"m": spec}, cache, devices=device, compile=compile_, compile_mode=compile_mode,
                             fuse_qkv=fuse_qkv, fp8=fp8, max_batch_size=engine_batch, max_batch_delay_ms=10,
                             max_queue=4 * concurrent, warmup_sizes=((size, size),))
        await engine.start()
        await engine.wait_ready()
        ready = time.perf_counter() - t0
        if not engine.health().ready:
            raise RuntimeError(f"engine not ready: {engine.health().loading_error}")
        try:
            # Warm-up as measured: a full concurrent round compiles for the batch sizes it forms.
            await asyncio.gather(*(engine.submit(f"w{i}", request(i)) for i in range(
                1 if mode == "latency" else concurrent)))
            times, rates, lat = [], [], []
            faults = minor_faults()
            for r in range(repeat):
                wait_turn(turns)  # blocks the loop while the engine is idle: nothing else runs then
                if mode == "latency":
                    t = time.perf_counter()
                    await engine.submit(f"l{r}", request(r))
                    times.append(time.perf_counter() - t)
                    report_turn(turns, r, times[-1])
                    continue

                async def one(i):
                    t = time.perf_counter()
                    await engine.submit(f"t{r}-{i}", request(i))
                    lat.append(time.perf_counter() - t)

                t = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(concurrent)))
                rates.append(concurrent / (time.perf_counter() - t))
                report_turn(turns, r, concurrent / rates[-1])
            images = repeat * (1 if mode == "latency" else concurrent)
            out = {"ready_s": ready, "peak_mib": _peak(device), "faults_per_image": (minor_faults() - faults) / images}
            if mode == "latency":
                out.update(s=statistics.median(times), p99=pct(times, 0.99))
            else:
                out.update(img_s=statistics.median(rates), p50=p50(lat), p99=pct(lat, 0.99))
            return out
        finally:
            await engine.stop()

    return asyncio.run(go())


PARTS = {"gpu_build": part_gpu_build, "gpu_plain": part_gpu_plain, "gpu_engine": part_gpu_engine}


def fp8_available() -> bool:
    import torch

    from pixelserve.engine.speed.optimize import FP8_MIN_CAPABILITY

    return (torch.cuda.is_available() and importlib.util.find_spec("torchao") is not None
            and torch.cuda.get_device_capability(0) >= FP8_MIN_CAPABILITY)


def row(name: str, run_part, cache: Path, repeat: int, quick: bool, tiny: bool, fp8: bool = True,
        compile_mode: str | None = None) -> list[dict]:
    family = FAMILY[name]
    mode = "latency" if "latency" in name else "throughput"
    size, steps = (TINY_SHAPES if tiny else SHAPES)[family]
    run_part("gpu_build", cache, family=family, tiny=tiny)  # built once, outside the timed parts
    plain = run_part("gpu_plain", cache, family=family, mode=mode, repeat=repeat, tiny=tiny)
    ours = run_part("gpu_engine", cache, family=family, mode=mode, repeat=repeat, tiny=tiny, compile_mode=compile_mode)
    note = (f"{'TINY smoke (not the GPU figure): ' if tiny else ''}{family} {size} px {steps} steps, random weights; "
            + ("batch 1" if mode == "latency" else f"plain: batches of {PLAIN_BATCH}; pixelserve: {CONCURRENT} "
               f"concurrent requests, batches up to {ENGINE_BATCH}")
            + (f"; pixelserve compiled with mode={compile_mode}" if compile_mode else ""))
    out = {"workload": name, "unit": "s" if mode == "latency" else "img/s", "target": TARGETS[name], "note": note,
           "peak_mib": {"plain": plain["peak_mib"], "pixelserve": ours["peak_mib"]},
           "ready_s": ours["ready_s"]}
    if mode == "latency":
        out.update(plain=plain["s"], pixelserve=ours["s"], ratio=plain["s"] / ours["s"],
                   p99_s={"plain": plain["p99"], "pixelserve": ours["p99"]})
        if name == "sdxl_b1_latency" and fp8 and not tiny and fp8_available():
            with_fp8 = run_part("gpu_engine", cache, family=family, mode=mode, repeat=repeat, tiny=tiny, fp8=True,
                                compile_mode=compile_mode)
            out.update(pixelserve_fp8=with_fp8["s"], ratio_fp8=plain["s"] / with_fp8["s"])
    else:
        out.update(plain=plain["img_s"], pixelserve=ours["img_s"], ratio=ours["img_s"] / plain["img_s"],
                   p99_s={"pixelserve": ours["p99"]})
    return [out]
