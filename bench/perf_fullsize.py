"""The ``cpu_fullsize`` rows of bench/perf.py: the engine vs plain diffusers on a full-size model, on a CPU.

The other CPU rows use the tiny demo models, where Python overhead dominates; an optimisation that
costs time in the kernels of a real UNet would not show there. These rows run the GPU rows' own
parts (bench/perf_gpu.py: full-size SD 1.5 architecture, random fp32 weights built from pixelserve's
shipped configs) at a size a 2-core CPU finishes in minutes, each side in its own process, both alive and measuring
in turns (bench/perf_common.Turns: a shared CPU's speed drifts more over minutes than what the rows
compare):

- ``cpu_fullsize_b1_latency``: one 256x256 image, 4 steps, s (plain / pixelserve).
- ``cpu_fullsize_throughput``: plain diffusers at batch 4 vs 4 concurrent single-image requests
  through the engine (batches up to 4), img/s.

The engine runs with the optimisations a server on this device has by default (settings unset:
engine/speed/optimize.py DEVICE_DEFAULTS). Both sides report minor page faults per image, the cost
engine/weights/host_memory.py removes. Minutes per row: not in ``--quick``, except with ``--gpu-tiny``
(the same code on the tiny models at 64 px, 2 steps: the smoke test of this path).
"""

from __future__ import annotations

from pathlib import Path

from bench.perf_common import Turns, run_part

ROWS = ("cpu_fullsize_b1_latency", "cpu_fullsize_throughput")
SHAPE = (256, 4)  # size, steps
TINY_SHAPE = (64, 2)
BATCH = 4
REPEAT = 3  # each measurement is 20-80 s on a 2-core CPU
TARGET = ">= 1.0x"


def rows(cache: Path, names: list[str], tiny: bool = False, repeat: int = REPEAT) -> list[dict]:
    run_part("gpu_build", cache, family="sd", tiny=tiny)  # built once, outside the timed parts
    shape = TINY_SHAPE if tiny else SHAPE
    out = []
    for name in names:
        mode = "latency" if name == "cpu_fullsize_b1_latency" else "throughput"
        common = dict(family="sd", mode=mode, repeat=repeat, tiny=tiny, shape=list(shape))
        turns = Turns(cache, {"plain": ("gpu_plain", dict(common, batch=BATCH)),
                              "pixelserve": ("gpu_engine", dict(common, concurrent=BATCH, engine_batch=BATCH,
                                                                server_defaults=True))})
        try:
            for r in range(repeat):  # one measurement each, the order alternating every round
                for label in ("plain", "pixelserve") if r % 2 == 0 else ("pixelserve", "plain"):
                    turns.turn(label)
            parts = turns.finish()
        finally:
            turns.close()
        plain, ours = parts["plain"], parts["pixelserve"]
        size, steps = shape
        row = {"workload": name, "unit": "s" if mode == "latency" else "img/s", "target": TARGET,
               "note": ("TINY smoke (not the row's figure): tiny SD" if tiny else "full-size SD 1.5")
                       + f", random fp32 weights, {size} px {steps} steps, median of {repeat} taken in turns; "
                       + ("batch 1" if mode == "latency" else
                          f"plain: batches of {BATCH}; pixelserve: {BATCH} concurrent requests, batches up to {BATCH}")
                       + "; pixelserve with this device's default optimisations",
               "peak_mib": {"plain": plain["peak_mib"], "pixelserve": ours["peak_mib"]},
               "page_faults_per_image": {"plain": round(plain["faults_per_image"]),
                                         "pixelserve": round(ours["faults_per_image"])}}
        if mode == "latency":
            row.update(plain=plain["s"], pixelserve=ours["s"], ratio=plain["s"] / ours["s"],
                       p99_s={"plain": plain["p99"], "pixelserve": ours["p99"]})
        else:
            row.update(plain=plain["img_s"], pixelserve=ours["img_s"], ratio=ours["img_s"] / plain["img_s"],
                       p99_s={"pixelserve": ours["p99"]})
        out.append(row)
    return out
