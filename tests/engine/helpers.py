"""Helpers for the engine tests."""


def cancel_at(engine, job_id: str, step: int = 2):
    """A progress callback that cancels ``job_id`` when ``step`` is reached; returns (callback, steps seen)."""
    seen: list[int] = []

    def progress(current: int, total: int) -> None:
        seen.append(current)
        if current == step:
            engine.cancel(job_id)

    return progress, seen
