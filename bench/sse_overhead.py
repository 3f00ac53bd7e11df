"""What a progress stream (GET /v1/jobs/{id}/events) adds to a job (issue #17: should be about 0).

Starts ``pixelserve serve`` on a free 127.0.0.1 port with the tiny demo models and times OctoAI
``/generate/sd`` jobs (64x64, ``--steps``) one after another, alternating: a job alone, then a job
watched by an SSE client from its start to its final event. Prints the median wall time of each
kind and how long after the synchronous answer the stream's final event arrived; writes
bench/results/sse-overhead-cpu-<date>.json. The watcher opens its stream as soon as the job exists
(it retries the 404 before the job is admitted every 5 ms, which is part of what is measured).

    .venv/bin/python bench/sse_overhead.py [--jobs 10] [--steps 30] [--note TEXT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.perf_common import RESULTS, p50, running_server, tiny_folder  # noqa: E402


def watch(client: httpx.Client, key: str, job_id: str, out: dict) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {key}"}) as s:
            if s.response.status_code == 404:
                time.sleep(0.005)
                continue
            for event in s.iter_sse():
                out["events"] = out.get("events", 0) + 1
                if event.event in ("finished", "failed", "cancelled"):
                    out["final_at"] = time.perf_counter()
                    return
        return


def one(client: httpx.Client, key: str, steps: int, job_id: str, watched: bool) -> dict:
    out: dict = {}
    watcher = threading.Thread(target=watch, args=(client, key, job_id, out)) if watched else None
    body = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": steps}
    started = time.perf_counter()
    if watcher is not None:
        watcher.start()
    r = client.post("/generate/sd", json=body, headers={"Authorization": f"Bearer {key}", "X-Job-Id": job_id})
    answered = time.perf_counter()
    r.raise_for_status()
    if watcher is not None:
        watcher.join(60)
    result = {"wall_s": answered - started}
    if watched:
        result["events"] = out.get("events", 0)
        result["final_after_answer_ms"] = (out["final_at"] - answered) * 1e3 if "final_at" in out else None
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10, help="jobs of each kind")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    env = {"PIXELSERVE_OCTOAI_EXTRA_SIZES": "64x64"}
    with tempfile.TemporaryDirectory() as cache:
        tiny_folder(Path(cache))
        with running_server(Path(cache), env) as (base, key, _), httpx.Client(base_url=base, timeout=120) as c:
            for i in range(3):  # warm-up
                one(c, key, args.steps, f"warm-{i}", watched=bool(i % 2))
            alone, watched = [], []
            for i in range(args.jobs):
                alone.append(one(c, key, args.steps, f"alone-{i}", watched=False))
                watched.append(one(c, key, args.steps, f"watched-{i}", watched=True))
    a = p50([r["wall_s"] for r in alone])
    w = p50([r["wall_s"] for r in watched])
    pairs = [(w_["wall_s"] - a_["wall_s"]) * 1e3 for a_, w_ in zip(alone, watched)]
    lags = [r["final_after_answer_ms"] for r in watched if r["final_after_answer_ms"] is not None]
    row = {"date": dt.date.today().isoformat(), "jobs": args.jobs, "steps": args.steps, "note": args.note,
           "alone_p50_s": round(a, 4), "watched_p50_s": round(w, 4), "overhead_pct": round((w / a - 1) * 100, 2),
           "paired_difference_p50_ms": round(p50(pairs), 2),
           "final_event_after_answer_p50_ms": round(p50(lags), 2) if lags else None,
           "events_per_watched_job": watched[0]["events"],
           "alone_s": [round(r["wall_s"], 4) for r in alone], "watched_s": [round(r["wall_s"], 4) for r in watched]}
    print(f"{'jobs':>5} {'steps':>5} {'alone p50 s':>12} {'watched p50 s':>14} {'overhead':>9} {'pair diff':>10} "
          f"{'final evt lag':>14}")
    print(f"{args.jobs:>5} {args.steps:>5} {a:>12.3f} {w:>14.3f} {row['overhead_pct']:>8.1f}% "
          f"{row['paired_difference_p50_ms']:>7.1f} ms {row['final_event_after_answer_p50_ms']!s:>11} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"sse-overhead-cpu-{row['date']}.json"
    path.write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
