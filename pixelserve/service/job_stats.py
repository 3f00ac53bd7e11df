"""The status page's numbers (http/ui.py): jobs ended per minute and their latency over the last hour,
read from the jobs table, every dialect's jobs together.

Latency is a succeeded job's whole time, from its record's creation (admission) to its end: what a
caller waits, queue included. Percentiles are nearest-rank over the jobs of the window or minute.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.models import Job
from pixelserve.service.job_status import iso, utc

#: The window the status page shows, and its buckets.
WINDOW_SECONDS = 3600
BUCKET_SECONDS = 60


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 3)


def recent_stats(sessions: sessionmaker[Session], now: datetime, window_s: int = WINDOW_SECONDS,
                 bucket_s: int = BUCKET_SECONDS) -> dict:
    since = now - timedelta(seconds=window_s)
    with sessions() as session:
        rows = session.execute(select(Job.status, Job.created_at, Job.finished_at)
                               .where(Job.finished_at.is_not(None), Job.finished_at >= since)).all()
    n = window_s // bucket_s
    counts = [0] * n
    latencies: list[list[float]] = [[] for _ in range(n)]
    outcomes: Counter[str] = Counter()
    for status, created, finished in rows:
        i = int((utc(finished) - since).total_seconds() // bucket_s)
        if not 0 <= i < n:
            continue  # a clock step: ended "in the future"
        counts[i] += 1
        outcomes[status] += 1
        if status == "succeeded" and created is not None:
            latencies[i].append(max(0.0, (utc(finished) - utc(created)).total_seconds()))
    every = sorted(x for bucket in latencies for x in bucket)
    buckets = []
    for i in range(n):
        values = sorted(latencies[i])
        buckets.append({"start": iso(since + timedelta(seconds=i * bucket_s)), "jobs": counts[i],
                        "p50": percentile(values, 50), "p95": percentile(values, 95)})
    return {"since": iso(since), "until": iso(now), "bucket_seconds": bucket_s, "jobs": sum(counts),
            "outcomes": {k: outcomes.get(k, 0) for k in ("succeeded", "failed", "cancelled")},
            "p50": percentile(every, 50), "p95": percentile(every, 95), "buckets": buckets}
