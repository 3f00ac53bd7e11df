"""engine/weights/host_memory.py: once retained, memory a thread frees is reused without page faults;
free_memory() hands it back after a model is dropped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelserve.engine.weights import gc_freeze, host_memory

ROOT = Path(__file__).resolve().parents[3]

# In a process of its own, as a server's: the engine is built first (app.build_engine, as the
# lifespan does), then a thread does what a denoising step does on a CPU: large tensors made, used
# and freed. retain() switches the malloc of the whole process, for good.
SCRIPT = r"""
import json, resource, sys, threading
import torch
from pixelserve.app import build_engine
from pixelserve.engine.weights import host_memory
from pixelserve.settings import Settings

engine = build_engine(Settings(data_dir=sys.argv[1]))

def step():
    a = torch.ones(16 * 2**20)  # 64 MiB
    b = torch.ones(4 * 2**20)  # 16 MiB
    assert float(a[-1] + b[-1]) == 2.0

def run():
    step()  # warm: this thread's first allocations
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(5):
        step()
    box["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

box = {}
t = threading.Thread(target=run)
t.start()
t.join()
print(json.dumps({"faults": box["faults"], "retained": host_memory.retained(), "released": host_memory.release()}))
"""


def step_faults(tmp_path, retain: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PIXELSERVE_RETAIN_HOST_MEMORY"}
    if retain is not None:
        env["PIXELSERVE_RETAIN_HOST_MEMORY"] = retain
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_a_cpu_engine_reuses_freed_memory_without_page_faults(tmp_path):
    default = step_faults(tmp_path, None)  # a CPU device: on by default
    off = step_faults(tmp_path, "false")
    assert default["retained"] is True and default["released"] is True and off["retained"] is False
    # glibc's own defaults: the 64 MiB block is unmapped when freed and faulted in again each time
    # (one fault per 4 KiB page, or fewer where the kernel backs it with huge pages)
    assert off["faults"] >= 5 * 8 * 1024
    # retained: the same blocks again (measured 2,048 against 51,201 here; 12,288 against 102,407 under
    # a full CI run's load)
    assert default["faults"] * 4 < off["faults"]


def test_free_memory_hands_retained_memory_back(monkeypatch):
    released = []
    monkeypatch.setattr(host_memory, "release", lambda: released.append(True) or True)
    monkeypatch.setattr(host_memory, "retained", lambda: False)
    gc_freeze.free_memory("cpu")
    assert released == []  # nothing retained: nothing to hand back
    monkeypatch.setattr(host_memory, "retained", lambda: True)
    gc_freeze.free_memory("cpu")
    assert released == [True]
