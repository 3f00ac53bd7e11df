"""The contract between the service layer and whatever runs the pipelines.

The embedded default is ``engine.runners.local.LocalEngine`` (in-process queue, one worker per device).
A supervised worker process or a Ray Serve deployment implements the same protocol; nothing
above the engine needs to know which one it talks to.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import GenerationRequest, GenerationResult

#: Called after each denoising step as ``on_progress(step, total_steps)``, or, when it takes a third
#: argument, ``on_progress(step, total_steps, preview)``: a live preview (JPEG bytes, engine/post/previews.py)
#: on the steps that have one, else None. Always on the event loop, never from a worker thread.
ProgressCallback = Callable[..., None]


def takes_preview(callback: ProgressCallback | None) -> bool:
    """Whether ``callback`` takes the preview (a third argument): engines make previews only for those,
    so a caller that does not care pays nothing and keeps its two-argument callback."""
    if callback is None:
        return False
    try:
        inspect.signature(callback).bind(0, 0, None)
    except (TypeError, ValueError):  # takes two arguments, or has no signature to read: the plain call
        return False
    return True


def report(callback: ProgressCallback | None, step: int, total: int, preview: bytes | None = None) -> None:
    """``callback``'s call for one step, with the preview if it takes one (see ProgressCallback)."""
    if callback is None:
        return
    if takes_preview(callback):
        callback(step, total, preview)
    else:
        callback(step, total)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    family: str
    tasks: tuple[str, ...]
    has_refiner: bool
    demo: bool  # tiny random-weight model: draws noise
    loaded: bool
    image_prompt: bool = False  # an IP-Adapter is configured: requests may carry image prompts

    @classmethod
    def of(cls, spec: ModelSpec, loaded: bool) -> "ModelInfo":
        return cls(id=spec.id, family=spec.family, tasks=spec.tasks, has_refiner=spec.refiner is not None,
                   demo=spec.is_demo, loaded=loaded, image_prompt=spec.ip_adapter is not None)


@dataclass(frozen=True)
class EngineHealth:
    ready: bool  # every configured model is loaded on every device
    devices: tuple[str, ...]
    queue_depth: int
    queue_capacity: int
    running: int
    loading_error: str | None = None
    #: Not ready yet, and why, when something outside the engine holds it up (a Ray replica no node has
    #: room for): not an error, it may still resolve (a node joins, another deployment goes away).
    waiting: str | None = None
    detail: dict = field(default_factory=dict)


@runtime_checkable
class EngineClient(Protocol):
    async def start(self) -> None:
        """Start workers and begin loading models; returns without waiting for the load."""

    async def stop(self) -> None:
        """Cancel queued jobs, let running ones stop, release models."""

    async def submit(
        self, job_id: str, request: GenerationRequest, on_progress: ProgressCallback | None = None
    ) -> GenerationResult:
        """Queue a validated request and wait for its result.

        Raises ``Overloaded`` when the queue is full, ``NotReady`` before models are loaded,
        ``Cancelled`` when ``cancel(job_id)`` was called or the awaiting task was cancelled.
        """

    def check(self, request: GenerationRequest) -> None:
        """Model-aware checks that need the loaded model (prompt token limits, adapter files).

        Called by the service before anything is recorded or charged; raises ``InvalidRequest``
        naming the field, or ``NotSupported``. Must be quick: no denoising.
        """

    async def postprocess(self, job_id: str, request: GenerationRequest, image: object) -> GenerationResult:
        """Run only ``request.post`` (upscale, face refine, NSFW check) on an existing PIL image."""

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; True if it was known."""

    def health(self) -> EngineHealth: ...

    def models(self) -> list[ModelInfo]: ...
