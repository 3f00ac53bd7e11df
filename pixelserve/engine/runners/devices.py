"""Each device's memory, used and total in bytes, for ``/metrics`` (pixelserve_device_memory_bytes).

CUDA: the whole device as the driver sees it (``mem_get_info``: other processes' use included, like
nvidia-smi). CPU: the resident memory of this process (the one holding the pipelines) and the
machine's RAM, from /proc and sysconf (Linux; elsewhere nothing). Other devices: nothing.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def memory(devices: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for device in devices:
        try:
            if device.startswith("cuda"):
                free, total = torch.cuda.mem_get_info(torch.device(device))
                out[device] = {"used": total - free, "total": total}
            elif device == "cpu":
                out[device] = _cpu()
        except Exception:  # a metric is not worth an error: the device is left out of this reading
            log.debug("reading the memory of %s failed", device, exc_info=True)
    return {d: m for d, m in out.items() if m}


def _cpu() -> dict[str, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        with open("/proc/self/statm") as f:
            resident = int(f.read().split()[1]) * page
    except (OSError, ValueError, AttributeError):
        return {}
    return {"used": resident, "total": total}
