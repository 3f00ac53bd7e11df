"""A1111 ``/memory``'s CUDA part from the engine's device readings (engine/runners/devices.py's shape)."""

from types import SimpleNamespace

from pixelserve.dialects.a1111.endpoints import _cuda


def test_first_cuda_device_as_system_memory():
    engine = SimpleNamespace(device_memory=lambda: {"cpu": {"used": 1, "total": 2},
                                                    "cuda:0": {"used": 30, "total": 100},
                                                    "cuda:1": {"used": 5, "total": 100}})
    assert _cuda(engine) == {"system": {"free": 70, "used": 30, "total": 100}}


def test_no_cuda_device_is_an_error_entry():
    assert _cuda(SimpleNamespace(device_memory=lambda: {"cpu": {"used": 1, "total": 2}})) == {"error": "no CUDA device"}
    assert _cuda(object()) == {"error": "no CUDA device"}  # an engine that reads no memory (Ray)
