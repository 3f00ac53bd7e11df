"""Garbage-collector pauses in a long-running engine process.

CPython's oldest-generation collection walks every object the collector tracks, and it holds the
GIL while it does: the event loop and the device threads all stop. A process holding torch,
diffusers, transformers, the pipelines and the web stack tracks hundreds of thousands of objects,
so those pauses are long and come back every few hundred requests (bench/gc_pauses.py measures them).

``gc.freeze()`` (CPython's own API for this, 3.7+) moves every object alive at that moment into a
permanent generation that collections skip. The engine calls ``freeze`` once it is ready (models
loaded, warmed up): what requests allocate afterwards is collected as before, and the oldest
generation's collections then walk only that.

Frozen objects are still freed by reference counting; only garbage *cycles* among them wait for an
unfreeze. So wherever the engine drops something it may have loaded before the freeze (a model
leaving the cache, a checkpoint override, memory recovery after an out-of-memory error),
``collect_all`` unfreezes, collects and freezes again: one full pause at a moment that already
costs far more (a load, an OOM), and nothing kept alive by the freeze.
"""

from __future__ import annotations

import gc

from pixelserve.engine.weights import host_memory


def freeze() -> int:
    """Collect what start-up left behind, then freeze everything alive; returns how many objects."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze() -> None:
    """Give frozen objects back to the collector (engine stop: its models become collectable)."""
    gc.unfreeze()


def collect_all() -> None:
    """A full collection that also reaches frozen objects; the survivors are frozen again."""
    frozen = gc.get_freeze_count() > 0
    if frozen:
        gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()


def free_memory(device: str) -> None:
    """After something that held weights on ``device`` is dropped: a full collection (its cycles may
    involve frozen objects) and the freed memory handed back: on CUDA the allocator's cached blocks,
    and host memory kept by engine/weights/host_memory.py."""
    collect_all()
    if host_memory.retained():
        host_memory.release()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
