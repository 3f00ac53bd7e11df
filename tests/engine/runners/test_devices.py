"""Device memory for /metrics: CUDA as the driver reports it, CPU from /proc, nothing for the rest."""

import torch

from pixelserve.engine.runners import devices


def test_cuda_reads_the_driver_and_cpu_reads_proc(monkeypatch):
    asked = []

    def mem_get_info(device):
        asked.append(str(device))
        return 30 << 30, 80 << 30  # free, total

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    memory = devices.memory(["cuda:1", "cpu", "mps"])
    assert asked == ["cuda:1"]
    assert memory["cuda:1"] == {"used": 50 << 30, "total": 80 << 30}
    assert 0 < memory["cpu"]["used"] < memory["cpu"]["total"]
    assert "mps" not in memory


def test_a_device_that_cannot_be_read_is_left_out(monkeypatch):
    def broken(device):
        raise RuntimeError("CUDA driver gone")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert set(devices.memory(["cuda:0", "cpu"])) == {"cpu"}
