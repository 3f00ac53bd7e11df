"""Helpers for the engine tests."""

from pixelserve.core.model_config import demo_config
from pixelserve.engine.runners.local import LocalEngine


async def started(tiny_cache, **kw) -> LocalEngine:
    """A LocalEngine on the tiny demo models, started and ready."""
    engine = LocalEngine(demo_config().models, tiny_cache, **kw)
    await engine.start()
    await engine.wait_ready()
    return engine


def cancel_at(engine, job_id: str, step: int = 2):
    """A progress callback that cancels ``job_id`` when ``step`` is reached; returns (callback, steps seen)."""
    seen: list[int] = []

    def progress(current: int, total: int) -> None:
        seen.append(current)
        if current == step:
            engine.cancel(job_id)

    return progress, seen
