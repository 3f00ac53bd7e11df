"""How a burst of concurrent requests falls into batches: latencies of each request, sorted.

The ``cpu_server_overhead`` row of bench/perf.py sends 32 Karlo t2i requests at once. Their p50
moves by hundreds of ms from round to round; this shows why. Each round prints the sorted
latencies (s); requests that finished together shared a batch, so the clusters are the batches;
then each Server-Timing stage (p50/max) and the server's CPU per request (all threads, and the
event loop's main thread alone).

    .venv/bin/python bench/burst.py [--rounds 3] [--requests 32] [--batch-delay-ms 10] [--batch-wait-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.perf_common import clusters, cpu_seconds_of, p50, running_server, tiny_folder  # noqa: E402
from bench.perf_cpu import karlo_body, stages_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batch-delay-ms", type=float, default=10.0)
    ap.add_argument("--batch-wait-ms", type=float, default=50.0,
                    help="PIXELSERVE_MAX_BATCH_WAIT_MS (0: a fixed window of --batch-delay-ms)")
    a = ap.parse_args()
    env = {"PIXELSERVE_MAX_BATCH_SIZE": str(a.batch_size), "PIXELSERVE_MAX_BATCH_DELAY_MS": str(a.batch_delay_ms),
           "PIXELSERVE_MAX_BATCH_WAIT_MS": str(a.batch_wait_ms),
           "PIXELSERVE_MAX_QUEUE": str(4 * a.requests), "PIXELSERVE_START_DEADLINE_SECONDS": "0",
           "PIXELSERVE_SERVER_TIMING": "true"}
    with tempfile.TemporaryDirectory() as cache:
        tiny_folder(Path(cache))
        with running_server(Path(cache), env) as (base, key, proc):
            async def go():
                headers = {"Authorization": f"KakaoAK {key}", "Content-Type": "application/json"}
                bodies = [json.dumps(karlo_body(i)).encode() for i in range(a.requests)]
                url = "/v2/inference/karlo/t2i"
                # Under uvicorn's 5 s keep-alive timeout: a connection idle since an early answer is not reused
                # just as the server closes it (httpx.ReadError).
                limits = httpx.Limits(max_connections=a.requests, keepalive_expiry=3)
                async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
                    assert (await client.post(url, content=bodies[0], headers=headers)).status_code == 200
                    cpu_total: list[tuple[float, float]] = []
                    for r in range(a.rounds):
                        latencies: list[float] = []
                        stages: list[dict[str, float]] = []

                        async def one(i):
                            t = time.perf_counter()
                            answer = await client.post(url, content=bodies[i], headers=headers)
                            assert answer.status_code == 200, answer.text[:300]
                            latencies.append(time.perf_counter() - t)
                            got = stages_of(answer)
                            got["client-app"] = latencies[-1] * 1e3 - got["app"]
                            got["client-engine"] = latencies[-1] * 1e3 - got["engine"]
                            stages.append(got)

                        await asyncio.sleep(0.5)
                        # The server's CPU: all threads, and its main thread alone (uvicorn's event loop).
                        cpu = cpu_seconds_of(proc.pid), cpu_seconds_of(proc.pid, thread=proc.pid)
                        await asyncio.gather(*(one(i) for i in range(a.requests)))
                        cpu = cpu_seconds_of(proc.pid) - cpu[0], cpu_seconds_of(proc.pid, thread=proc.pid) - cpu[1]
                        print(f"round {r + 1}: p50 {p50(latencies):.2f} s, batches {clusters(latencies)}")
                        print("  " + " ".join(f"{x:.2f}" for x in sorted(latencies)))
                        # Server-Timing per stage (ms), p50 and max over the round's requests.
                        print("  stages p50/max ms: " + ", ".join(
                            f"{k} {p50([s[k] for s in stages]):.1f}/{max(s[k] for s in stages):.1f}"
                            for k in stages[0] if k not in ("app", "engine")))
                        print(f"  server CPU per request: {cpu[0] / a.requests * 1e3:.1f} ms, of it on the event loop "
                              f"{cpu[1] / a.requests * 1e3:.2f} ms")
                        cpu_total.append(cpu)
                    n = a.requests * len(cpu_total)
                    print(f"all rounds: server CPU per request {sum(c[0] for c in cpu_total) / n * 1e3:.1f} ms, "
                          f"event loop {sum(c[1] for c in cpu_total) / n * 1e3:.2f} ms (/proc counts 10 ms ticks)")

            asyncio.run(go())


if __name__ == "__main__":
    main()
