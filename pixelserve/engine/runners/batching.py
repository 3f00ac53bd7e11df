"""Cross-request dynamic batching: which queued jobs may share one pipeline call, and the queue
that hands them out together.

Requests that share model, task, size, steps, sampler, guidance, adapters and post-processing
can be stacked into one batch: each keeps its own prompt, negative prompt and seeds (one
generator per image), so an image does not depend on what it was batched with. Anything with
per-request inputs the pipelines cannot stack (input images, ControlNet, image prompts) runs
alone, and a job that cannot batch never waits for the batching delay.

asyncio.Queue cannot take out the compatible jobs further back in line, so this is a small
deque with a condition (written by hand: no maintained library does keyed batching of asyncio
jobs; LitServe and Ray Serve batch whole queues, not by key).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import astuple
from typing import Any, Callable, Hashable

from pixelserve.core.request import GenerationRequest

#: Fields that may differ inside one batch; every other field must be equal.
PER_IMAGE = ("prompt", "negative_prompt", "prompt_2", "negative_prompt_2", "seeds", "num_images")


def batch_key(request: GenerationRequest) -> Hashable | None:
    """The key jobs must share to run in one pipeline call; None: this job runs alone."""
    if request.task != "txt2img" or request.controlnet is not None or request.image_prompt is not None:
        return None
    if request.use_refiner:  # the refiner pass is per image set; keep it simple and exact
        return None
    if request.subseed_strength or request.prompt_schedule or request.seed_resize_from:  # per-request noise or embeddings during sampling
        return None
    if request.post.face_refine is not None or request.post.upscale:
        return None  # post passes are per image and long: batching them gains nothing
    shared = []
    for name, value in request.__dict__.items():
        if name in PER_IMAGE:
            continue
        if name == "post":
            value = astuple(value)
        elif isinstance(value, tuple):
            value = tuple(astuple(v) if hasattr(v, "__dataclass_fields__") else v for v in value)
        shared.append((name, value))
    try:
        key = tuple(shared)
        hash(key)
    except TypeError:  # an unhashable field (an image): not batchable
        return None
    return key


class BatchQueue:
    """A bounded FIFO whose consumers take the oldest job plus compatible jobs behind it."""

    def __init__(self, maxsize: int, key: Callable[[Any], Hashable | None]):
        self.maxsize = maxsize
        self._key = key
        self._items: collections.deque = collections.deque()
        self._cond = asyncio.Condition()

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull()
        self._items.append(item)
        # Wake consumers without awaiting: put_nowait is called from synchronous code paths.
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def get_batch(self, max_size: int, delay_s: float, images_of: Callable[[Any], int],
                        max_wait_s: float = 0.0) -> list[Any]:
        """The oldest job and up to ``max_size`` images' worth of compatible jobs.

        Waits for more compatible jobs only when the first one can batch and the batch is not full
        yet: up to ``delay_s`` after the newest compatible job joined, so a burst whose requests
        arrive a few ms apart (each one admitted by the server in turn) fills one batch instead of
        leaving its first batch half empty; and never more than ``max(max_wait_s, delay_s)`` in
        all. ``max_wait_s=0`` keeps a fixed window of ``delay_s`` from the first job. A lone job
        waits ``delay_s``, as before.
        """
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._items))
            first = self._items.popleft()
            batch = [first]
            key = self._key(first)
            if key is None or max_size <= 1:
                return batch
            total = images_of(first)
            started = time.monotonic()
            cap = started + max(max_wait_s, delay_s)
            quiet_until = started + delay_s
            while True:
                before = total
                total = self._take_compatible(key, batch, total, max_size, images_of)
                now = time.monotonic()
                if total > before:
                    quiet_until = now + delay_s
                remaining = min(cap, quiet_until) - now
                if total >= max_size or remaining <= 0:
                    return batch
                try:
                    await asyncio.wait_for(self._cond.wait(), remaining)
                except asyncio.TimeoutError:
                    pass

    def _take_compatible(self, key, batch: list, total: int, max_size: int, images_of) -> int:
        keep = collections.deque()
        while self._items:
            item = self._items.popleft()
            n = images_of(item)
            if total + n <= max_size and self._key(item) == key:
                batch.append(item)
                total += n
            else:
                keep.append(item)
        self._items = keep
        return total

    def drain(self) -> list[Any]:
        items = list(self._items)
        self._items.clear()
        return items


class AllSet:
    """Looks like a threading.Event to the families: set only when every job's event is set."""

    def __init__(self, events: list):
        self.events = events

    def is_set(self) -> bool:
        return all(e.is_set() for e in self.events)


def run_batch(family: Any, model: Any, requests: list[GenerationRequest], on_step=None, cancel=None,
              previews: list | None = None) -> list[list]:
    """Images per request. Batchable families stack the requests into one pipeline call;
    others run them one after another (still correct, just not faster). ``previews``: each request's
    preview hook (families/base.PreviewHook) or None; a stacked call hands each one the whole batch."""
    previews = previews or [None] * len(requests)
    if getattr(family, "batchable", False):
        hooks = [p for p in previews if p is not None]
        preview = (lambda step, latents, scheduler: [h(step, latents, scheduler) for h in hooks]) if hooks else None
        return family.run_many(model, requests, on_step=on_step, cancel=cancel, preview=preview)
    return [family.run(model, r, on_step=on_step, cancel=cancel, preview=p) for r, p in zip(requests, previews)]
