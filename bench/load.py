"""Load at twice the queue capacity against a real server on 127.0.0.1 (bounded in count and time).

Every answer must be 200 (served), 429 (a per-key rate limit) or 503 (queue full, with Retry-After):
never another status, never a hang. Besides the Karlo clients (2x the queue), a few Studio clients
share one key limited to a few requests a minute, so the per-key refusal (429) is exercised under
the same load. Prints the p50/p99 latency of the served requests, the statuses, and the server's
resident memory before and after (it must come back within 10%).

    .venv/bin/python bench/load.py [--queue 8] [--rounds 20] [--limited 2] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.perf_common import pct, running_server, tiny_folder  # noqa: E402

PER_MINUTE = 5  # the rate-limited key's quota


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def load(base: str, key: str, limited_key: str | None, concurrency: int, limited: int, rounds: int,
               max_seconds: float) -> tuple[collections.Counter, list[float], int]:
    karlo = {"version": "v2.0", "prompt": "load", "width": 384, "height": 384, "num_inference_steps": 10,
             "return_type": "base64_string", "image_format": "png"}
    studio = {"prompt": "load", "styleId": 1, "ratio": "1:1", "sample": 1}
    statuses: collections.Counter = collections.Counter()
    served: list[float] = []
    retry_after_missing = 0
    deadline = time.monotonic() + max_seconds
    async with httpx.AsyncClient(base_url=base, timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency + limited)) as c:
        async def one(i: int, rate_limited: bool) -> None:
            nonlocal retry_after_missing
            t = time.perf_counter()
            if rate_limited:
                r = await c.post("/api/images/create", json=studio, headers={"X-Api-Key": limited_key})
            else:
                r = await c.post("/v2/inference/karlo/t2i", json={**karlo, "seed": [i]},
                                 headers={"Authorization": f"KakaoAK {key}"})
            statuses[("studio, rate-limited key" if rate_limited else "karlo", r.status_code)] += 1
            if r.status_code == 200:
                served.append(time.perf_counter() - t)
            elif r.status_code in (429, 503) and "retry-after" not in r.headers:
                retry_after_missing += 1

        for n in range(rounds):
            if time.monotonic() > deadline:
                break
            await asyncio.gather(*(one(n * concurrency + i, False) for i in range(concurrency)),
                                 *(one(0, True) for _ in range(limited if limited_key else 0)))
    return statuses, served, retry_after_missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue", type=int, default=8, help="the server's queue capacity (PIXELSERVE_MAX_QUEUE)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--limited", type=int, default=2, help="Studio clients per round on the rate-limited key")
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--warmup-rounds", type=int, default=10, help="most warm-up passes of 2 rounds each")
    a = ap.parse_args()
    concurrency = 2 * a.queue
    limited_key: dict[str, str] = {}

    def rate_limited_key(env: dict) -> None:
        bin_dir = Path(sys.executable).parent
        out = subprocess.run([bin_dir / "pixelserve", "keys", "create", "--name", "rate-limited"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()
        subprocess.run([bin_dir / "pixelserve", "keys", "quota", out[0].split()[2], "--per-minute", str(PER_MINUTE)],
                       env=env, capture_output=True, check=True)
        limited_key["key"] = out[-1]

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        tiny_folder(cache)
        env = {"PIXELSERVE_MAX_QUEUE": str(a.queue), "PIXELSERVE_MAX_BATCH_SIZE": "4", "PIXELSERVE_STUDIO_STEPS": "10",
               "PIXELSERVE_STUDIO_RESOLUTIONS": '{"sd": {"1:1": "384x384"}}'}
        with running_server(cache, env, setup=rate_limited_key) as (base, key, proc):
            # Warm-up until resident memory settles (allocator arenas, caches, batch shapes seen once,
            # the NSFW model Studio loads on first use); Studio here on the unlimited key.
            before = 0.0
            for _ in range(a.warmup_rounds):
                asyncio.run(load(base, key, key, concurrency, a.limited, 2, a.max_seconds))
                before, previous = rss_mib(proc.pid), before
                if previous and before <= previous * 1.01:
                    break
            started = time.perf_counter()
            statuses, served, missing = asyncio.run(load(base, key, limited_key["key"], concurrency, a.limited,
                                                         a.rounds, a.max_seconds))
            took = time.perf_counter() - started
            time.sleep(2)
            after = rss_mib(proc.pid)
    total = sum(statuses.values())
    bad = {k: n for k, n in statuses.items() if k[1] not in (200, 429, 503)}
    print(f"\nload: {concurrency} concurrent Karlo clients (2x queue of {a.queue}) + {a.limited} Studio clients on a "
          f"key limited to {PER_MINUTE}/min; {total} requests in {took:.1f} s\n")
    print("| clients | status | count |")
    print("|---|---|---|")
    for (who, status), n in sorted(statuses.items()):
        print(f"| {who} | {status} | {n} |")
    if served:
        print(f"\nserved: p50 {statistics.median(served) * 1e3:.0f} ms, p99 {pct(served, 0.99) * 1e3:.0f} ms, "
              f"{len(served) / took:.2f} img/s")
    print(f"refusals without Retry-After: {missing}")
    print(f"server RSS: {before:.0f} MiB before, {after:.0f} MiB after ({(after / before - 1) * 100:+.1f}%)")
    ok = not bad and missing == 0 and after <= before * 1.10 and served
    print("\nOK" if ok else f"\nFAILED: unexpected statuses {bad}" if bad else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
