"""A valid caller's latency alone and under a flood of bogus API keys, in one run (issue #24).

Starts ``pixelserve serve`` on a free 127.0.0.1 port with the tiny demo models, then times a valid
caller's OctoAI ``/generate/sd`` (64x64, 2 steps), one request after another: first alone, then
while ``--clients`` clients (another process) send random well-formed ``ps_...`` keys to the same
endpoint as fast as the server answers, for ``--seconds``. Prints p50/p95 of both phases, the
flood's answers by status and the server's CPU; writes bench/results/auth-flood-cpu-<date>.json.
Target: the p50 under flood within 10% of the p50 alone. Traffic goes only to the server this
script starts; every loop is bounded in time and count.

    .venv/bin/python bench/auth_flood.py [--seconds 20] [--clients 4] [--alone 40] [--note TEXT]

Measuring another checkout's server (e.g. before a change): run it with PYTHONPATH naming that
checkout; the server (``pixelserve`` from this venv) then imports that code.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.perf_common import RESULTS, cpu_seconds_of, pct, running_server, tiny_folder  # noqa: E402

BODY = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}
PATH = "/generate/sd"
MAX_FLOOD_REQUESTS = 200_000  # per client, besides the time bound


async def flood(base: str, seconds: float, clients: int) -> dict:
    """``clients`` loops of bogus-key requests until ``seconds`` pass; answers counted by status."""
    statuses: collections.Counter = collections.Counter()
    deadline = time.monotonic() + seconds
    raw = json.dumps(BODY)

    async def one_client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            for _ in range(MAX_FLOOD_REQUESTS):
                if time.monotonic() > deadline:
                    return
                key = "ps_" + secrets.token_urlsafe(32)
                try:
                    r = await c.post(PATH, content=raw, headers={"Authorization": f"Bearer {key}",
                                                                 "Content-Type": "application/json"})
                    statuses[r.status_code] += 1
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1

    print("flooding", flush=True)
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return {str(k): v for k, v in statuses.items()}


def timed_requests(client: httpx.Client, key: str, *, count: int | None = None,
                   until: float | None = None) -> list[float]:
    """Sequential valid requests: ``count`` of them, or as many as fit before ``until`` (monotonic)."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(count or 100_000):
        if until is not None and time.monotonic() > until:
            break
        t = time.perf_counter()
        r = client.post(PATH, json={**BODY, "seed": i}, headers=headers)
        latencies.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text[:300]
    return latencies


def summary(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_ms": pct(latencies, 0.5) * 1e3, "p95_ms": pct(latencies, 0.95) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20, help="length of the flood")
    ap.add_argument("--clients", type=int, default=4, help="flooding clients")
    ap.add_argument("--alone", type=int, default=40, help="valid requests timed before the flood")
    ap.add_argument("--note", default="", help="written into the JSON (e.g. what else loaded the machine)")
    ap.add_argument("--out", type=Path, default=RESULTS / f"auth-flood-cpu-{dt.date.today().isoformat()}.json")
    ap.add_argument("--flood-part", help=argparse.SUPPRESS)  # internal: the flooding process, given the base URL
    a = ap.parse_args()
    if a.flood_part:
        print(json.dumps(asyncio.run(flood(a.flood_part, a.seconds, a.clients))), flush=True)
        return
    env = {"PIXELSERVE_OCTOAI_EXTRA_SIZES": "64x64"}
    with tempfile.TemporaryDirectory() as cache:
        tiny_folder(Path(cache))
        with running_server(Path(cache), env) as (base, key, proc), httpx.Client(base_url=base, timeout=120) as c:
            timed_requests(c, key, count=3)  # warm-up: first-request costs, the key remembered
            cpu0, t0 = cpu_seconds_of(proc.pid), time.monotonic()
            alone = timed_requests(c, key, count=a.alone)
            cpu_alone = (cpu_seconds_of(proc.pid) - cpu0) / (time.monotonic() - t0)
            flooder = subprocess.Popen([sys.executable, __file__, "--flood-part", base, "--seconds", str(a.seconds),
                                        "--clients", str(a.clients)], stdout=subprocess.PIPE, text=True)
            try:
                assert flooder.stdout.readline().strip() == "flooding"
                time.sleep(min(2.0, a.seconds / 10))  # let the flood reach its pace (and the limit engage)
                cpu0, t0 = cpu_seconds_of(proc.pid), time.monotonic()
                under = timed_requests(c, key, until=t0 + a.seconds - min(2.0, a.seconds / 10) - 0.5)
                cpu_flood = (cpu_seconds_of(proc.pid) - cpu0) / (time.monotonic() - t0)
                statuses = json.loads(flooder.communicate(timeout=a.seconds + 120)[0].strip().splitlines()[-1])
            finally:
                if flooder.poll() is None:
                    flooder.kill()
    rows = {"alone": summary(alone), "under flood": summary(under)}
    ratio = rows["under flood"]["p50_ms"] / rows["alone"]["p50_ms"]
    flood_rps = sum(statuses.values()) / a.seconds
    print(f"\nvalid caller: OctoAI {PATH} {BODY['width']}x{BODY['height']}, {BODY['steps']} steps, one after another; "
          f"flood: {a.clients} clients of random ps_ keys for {a.seconds:.0f} s\n")
    print("| phase | requests | p50 ms | p95 ms | server CPU (cores) |")
    print("|---|---|---|---|---|")
    for name, cpu in (("alone", cpu_alone), ("under flood", cpu_flood)):
        r = rows[name]
        print(f"| {name} | {r['n']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {cpu:.2f} |")
    print(f"\np50 under flood / alone: {ratio:.2f} (target <= 1.10); flood {flood_rps:.0f} req/s, answers {statuses}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "device": "cpu", "date": dt.date.today().isoformat(), "cpus": os.cpu_count(), "seconds": a.seconds,
        "clients": a.clients, "request": {"path": PATH, **BODY}, "rows": rows, "p50_ratio": ratio,
        "server_cpu_cores": {"alone": cpu_alone, "under flood": cpu_flood}, "flood_statuses": statuses,
        "flood_req_s": flood_rps, "note": a.note}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
