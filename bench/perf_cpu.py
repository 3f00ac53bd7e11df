"""The CPU rows of bench/perf.py on the tiny random-weight demo models.

- ``cpu_server_overhead``: 32 concurrent Karlo t2i HTTP clients against a real server vs the same
  jobs submitted straight to an engine in another process (baseline: direct engine). Rounds of the
  two alternate (ABBA), both processes alive all along, so both sides see the same machine load.
  Added p50 = p50 of the HTTP latencies minus p50 of the direct ones, all rounds pooled. Under 32
  concurrent clients that difference moves by hundreds of ms from round to round (which jobs share
  a batch, in which order), so the row also times the same jobs from ONE client, one after another,
  alternating the sides: ``added_p50_one_client_ms`` is what the server adds to one request.
- ``cpu_batching``: 16 concurrent identical-shape requests through the engine with dynamic
  batching vs plain diffusers serving them one at a time, img/s.
- ``cpu_compile``: one request, torch.compile'd UNet + VAE decoder vs plain diffusers eager, s.
- ``restart_to_ready``: engine start to ready with compile, cold cache vs warm cache, s.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.perf_common import (clusters, cpu_seconds_of, p50, part_command, pct, peak_rss_mib, peak_rss_of,
                                running_server, tiny_folder)

SIZE, STEPS = 64, 10  # the tiny models at 64 px: pixelserve's own cost is what shows
HTTP_SIZE = 384  # the server-overhead row: Karlo t2i, png, base64 (its heaviest answer)
SEQUENTIAL = 8  # the server-overhead row's one-client requests per round and side


def karlo_body(i: int, size: int = HTTP_SIZE) -> dict:
    return {"version": "v2.0", "prompt": f"a cat number {i}", "width": size, "height": size,
            "num_inference_steps": STEPS, "return_type": "base64_string", "image_format": "png", "seed": [i]}


def plain_pipe(cache: Path):
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_folder(cache), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def call(seed: int = 1):
        with torch.inference_mode():
            return pipe("a cat", width=SIZE, height=SIZE, num_inference_steps=STEPS,
                        generator=torch.Generator().manual_seed(seed)).images[0]

    return call


async def started_engine(cache: Path, **kw):
    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.runners.local import LocalEngine

    engine = LocalEngine(demo_config().models, cache, **kw)
    await engine.start()
    await engine.wait_ready()
    return engine


def request(seed: int = 1, prompt: str = "a cat", nsfw: bool = False):
    from pixelserve.core.request import GenerationRequest, PostProcess

    return GenerationRequest(model="tiny-sd", prompt=prompt, width=SIZE, height=SIZE, steps=STEPS,
                             guidance_scale=7.5, seeds=(seed,), post=PostProcess(nsfw_check=nsfw))


# -- parts, each run in its own process ----------------------------------------------------------
def part_plain_one_at_a_time(cache: Path, n: int, repeat: int) -> dict:
    """Plain diffusers serving ``n`` requests one after another (the batching baseline)."""
    call = plain_pipe(cache)
    call()
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(n):
            call(i)
        rates.append(n / (time.perf_counter() - t))
    return {"img_s": statistics.median(rates), "runs": rates, "peak_mib": peak_rss_mib()}


def part_plain_latency(cache: Path, repeat: int) -> dict:
    call = plain_pipe(cache)
    call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        image = call(7)
        times.append(time.perf_counter() - t)
    path = cache / "plain-eager.png"
    image.save(path)
    return {"s": statistics.median(times), "p99": pct(times, 0.99), "image": str(path), "peak_mib": peak_rss_mib()}


def part_engine_concurrent(cache: Path, n: int, repeat: int, batch: int, nsfw: bool = False) -> dict:
    """``n`` identical-shape requests submitted at once to the engine (dynamic batching).

    ``nsfw``: every request asks for the NSFW check, which the engine runs off the device thread
    while the next batch denoises; the time it took per image is reported beside the rate.
    """

    async def go():
        from pixelserve.settings import Settings

        settings = Settings()
        engine = await started_engine(cache, max_batch_size=batch, max_batch_delay_ms=settings.max_batch_delay_ms,
                                      max_batch_wait_ms=settings.max_batch_wait_ms)
        try:
            await engine.submit("warm", request(nsfw=nsfw))
            rates, lat, scoring = [], [], []
            for r in range(repeat):
                async def one(i):
                    t = time.perf_counter()
                    res = await engine.submit(f"r{r}-{i}", request(i, f"a cat number {i}", nsfw))
                    lat.append(time.perf_counter() - t)
                    scoring.append(res.timings_ms.get("nsfw", 0.0))

                t = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(n)))
                rates.append(n / (time.perf_counter() - t))
            return {"img_s": statistics.median(rates), "runs": rates, "p50": p50(lat), "p99": pct(lat, 0.99),
                    "nsfw_ms_per_image": statistics.median(scoring), "peak_mib": peak_rss_mib()}
        finally:
            await engine.stop()

    return asyncio.run(go())


def part_engine_compiled(cache: Path, repeat: int) -> dict:
    async def go():
        t0 = time.perf_counter()
        engine = await started_engine(cache, compile=True)
        ready = time.perf_counter() - t0
        try:
            await engine.submit("warm", request(7))
            times = []
            for i in range(repeat):
                t = time.perf_counter()
                res = await engine.submit(f"c{i}", request(7))
                times.append(time.perf_counter() - t)
            path = cache / "compiled.png"
            res.images[0].save(path)
            return {"s": statistics.median(times), "p99": pct(times, 0.99), "ready_s": ready, "image": str(path),
                    "peak_mib": peak_rss_mib()}
        finally:
            await engine.stop()

    return asyncio.run(go())


def part_direct_rounds(cache: Path, n: int, batch: int) -> dict:
    """A long-lived direct-engine side of the server-overhead row: one round per stdin line.

    Each job is the engine request the server's Karlo route builds from the same body (its own
    translate and validate), so both sides run exactly the same denoising work.
    """
    from pixelserve.core.validate import validate
    from pixelserve.dialects.karlo import translate
    from pixelserve.dialects.karlo.protocol import T2IRequest
    from pixelserve.settings import Settings

    settings = Settings()

    async def go():
        engine = await started_engine(cache, max_batch_size=batch, max_batch_delay_ms=settings.max_batch_delay_ms,
                                      max_batch_wait_ms=settings.max_batch_wait_ms, max_queue=4 * n)
        jobs = [validate(translate.t2i_to_request(T2IRequest(**karlo_body(i)), "tiny-sd"), engine.models())
                for i in range(n)]
        await engine.submit("warm", jobs[0])
        print(json.dumps({"ready": True}), flush=True)
        loop = asyncio.get_running_loop()
        r = 0
        try:
            while (line := (await loop.run_in_executor(None, sys.stdin.readline)).split()) and line[0] in ("round",
                                                                                                  "seq"):
                lat: list[float] = []
                if line[0] == "seq":  # one client: int(line[1]) requests one after another
                    for i in range(int(line[1])):
                        t = time.perf_counter()
                        await engine.submit(f"s{r}-{i}", jobs[i % len(jobs)])
                        lat.append(time.perf_counter() - t)
                    print(json.dumps({"lat": lat}), flush=True)
                    r += 1
                    continue

                async def one(i):
                    t = time.perf_counter()
                    await engine.submit(f"r{r}-{i}", jobs[i])
                    lat.append(time.perf_counter() - t)

                t, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(one(i) for i in range(n)))
                print(json.dumps({"wall": time.perf_counter() - t, "lat": lat, "cpu": time.process_time() - cpu}),
                      flush=True)
                r += 1
        finally:
            await engine.stop()
        return {"rounds": r, "peak_mib": peak_rss_mib()}

    return asyncio.run(go())


def stages_of(answer) -> dict[str, float]:
    """The Server-Timing stages of an answer, ms (core/timing.py)."""
    return {k: float(v) for k, v in (x.split(";dur=") for x in answer.headers["server-timing"].split(", "))}


def part_server_overhead(cache: Path, n: int, repeat: int, batch: int) -> dict:
    """``n`` concurrent HTTP clients vs ``n`` direct engine submits, rounds alternating ABBA.

    The client sends prepared bodies over keep-alive connections and checks each answer's status
    and size; it parses the JSON of the warm-up answer only, so the load generator's own CPU (it
    shares the machine) stays small next to the server's.
    """
    import httpx

    # No start deadline: on a loaded machine a round may queue jobs longer than the default 120 s.
    # Server-Timing on: the one-client requests report where the server's time went (core/timing.py;
    # a few perf_counter calls per request).
    env = {"PIXELSERVE_MAX_BATCH_SIZE": str(batch), "PIXELSERVE_MAX_QUEUE": str(4 * n),
           "PIXELSERVE_START_DEADLINE_SECONDS": "0", "PIXELSERVE_SERVER_TIMING": "true"}
    penv = {**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    direct = subprocess.Popen(part_command("direct_rounds", cache, n=n, batch=batch), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=penv)
    try:
        assert json.loads(direct.stdout.readline()).get("ready"), "direct engine did not start"

        def direct_round() -> tuple[float, list[float], float]:
            direct.stdin.write("round\n")
            direct.stdin.flush()
            out = json.loads(direct.stdout.readline())
            return out["wall"], out["lat"], out["cpu"]

        def direct_one_client() -> list[float]:
            direct.stdin.write(f"seq {SEQUENTIAL}\n")
            direct.stdin.flush()
            return json.loads(direct.stdout.readline())["lat"]

        with running_server(cache, env) as (base, key, proc):
            async def go():
                headers = {"Authorization": f"KakaoAK {key}", "Content-Type": "application/json"}
                bodies = [json.dumps(karlo_body(i)).encode() for i in range(n)]
                url = "/v2/inference/karlo/t2i"
                # keep-alive under uvicorn's 5 s: an idle connection is never reused as the server closes it
                limits = httpx.Limits(max_connections=n, keepalive_expiry=3)
                async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c:
                    warm = await c.post(url, content=bodies[0], headers=headers)
                    assert warm.status_code == 200 and warm.json()["images"][0]["image"], warm.text[:300]
                    size = len(warm.content)

                    async def http_round() -> tuple[float, list[float], float]:
                        lat: list[float] = []
                        cpu = cpu_seconds_of(proc.pid)

                        async def one(i):
                            t = time.perf_counter()
                            r = await c.post(url, content=bodies[i], headers=headers)
                            lat.append(time.perf_counter() - t)
                            assert r.status_code == 200 and abs(len(r.content) - size) < size // 10, r.text[:300]
                            # What the server added around this request's own engine call, in ms.
                            around_engine.append(lat[-1] * 1e3 - stages_of(r)["engine"])

                        t = time.perf_counter()
                        await asyncio.gather(*(one(i) for i in range(n)))
                        return time.perf_counter() - t, lat, cpu_seconds_of(proc.pid) - cpu

                    async def http_one_client() -> list[float]:
                        lat: list[float] = []
                        for i in range(SEQUENTIAL):
                            t = time.perf_counter()
                            r = await c.post(url, content=bodies[i % n], headers=headers)
                            lat.append(time.perf_counter() - t)
                            assert r.status_code == 200, r.text[:300]
                            server = stages_of(r)
                            server["client"] = lat[-1] * 1e3  # the whole request, as the client saw it
                            stage_ms.append(server)
                        return lat

                    stage_ms: list[dict[str, float]] = []
                    around_engine: list[float] = []
                    sides = {"direct": [], "http": [], "direct_one_client": [], "http_one_client": []}
                    # One untimed round on each side first, so the timed rounds start with batches of 8
                    # at this size already run once (the warm-up request above runs at batch 1).
                    direct_round()
                    await http_round()
                    around_engine.clear()
                    for r in range(repeat):
                        for side in (("direct", "http") if r % 2 == 0 else ("http", "direct")):
                            await asyncio.sleep(0.3)  # the other side's idle threads settle
                            got = direct_round() if side == "direct" else await http_round()
                            sides[side].append(got)
                    for r in range(repeat):
                        for side in (("direct", "http") if r % 2 == 0 else ("http", "direct")):
                            await asyncio.sleep(0.3)
                            got = direct_one_client() if side == "direct" else await http_one_client()
                            sides[f"{side}_one_client"].extend(got)
                    return sides, stage_ms, around_engine

            sides, stage_ms, around_engine = asyncio.run(go())
            server_peak = peak_rss_of(proc.pid)
        direct.stdin.write("stop\n")
        direct.stdin.flush()
        direct_peak = json.loads(direct.stdout.readlines()[-1])["peak_mib"]
    finally:
        if direct.poll() is None:
            direct.kill()
    one_client = {side: sides.pop(f"{side}_one_client") for side in ("direct", "http")}
    out = {}
    for side, rounds in sides.items():
        lat = [x for _, ls, _ in rounds for x in ls]
        rates = [n / wall for wall, _, _ in rounds]
        out[side] = {"img_s": statistics.median(rates), "runs": rates, "p50": p50(lat), "p99": pct(lat, 0.99),
                     "round_p50": [p50(ls) for _, ls, _ in rounds],
                     "round_batches": [clusters(ls) for _, ls, _ in rounds],
                     "cpu_ms_per_request": statistics.median(cpu for _, _, cpu in rounds) / n * 1e3}
    out["direct"]["peak_mib"], out["http"]["peak_mib"] = direct_peak, server_peak
    for side, lat in one_client.items():
        out[side]["one_client_p50"], out[side]["one_client_n"] = p50(lat), len(lat)
    out["http"]["stages_p50_ms"] = {k: p50([s[k] for s in stage_ms if k in s]) for k in stage_ms[0]}
    out["http"]["around_engine_p50_ms"] = {"one_client": p50([s["client"] - s["engine"] for s in stage_ms]),
                                           "concurrent": p50(around_engine)}
    return out


PARTS = {
    "plain_one_at_a_time": part_plain_one_at_a_time,
    "plain_latency": part_plain_latency,
    "engine_concurrent": part_engine_concurrent,
    "engine_compiled": part_engine_compiled,
    "direct_rounds": part_direct_rounds,
    "server_overhead": part_server_overhead,
}


# -- rows ---------------------------------------------------------------------------------------
def row_server_overhead(run_part, cache: Path, repeat: int, quick: bool) -> list[dict]:
    n = 4 if quick else 32
    got = run_part("server_overhead", cache, n=n, repeat=repeat, batch=4 if quick else 8)
    direct, http = got["direct"], got["http"]
    paired = [h - d for h, d in zip(http["round_p50"], direct["round_p50"])]
    return [{"workload": "cpu_server_overhead", "unit": "img/s", "plain": direct["img_s"],
             "pixelserve": http["img_s"], "target": ">= 0.9x, <= 5 ms added p50",
             "ratio": http["img_s"] / direct["img_s"], "added_p50_ms": (http["p50"] - direct["p50"]) * 1e3,
             "added_p50_per_round_ms": [x * 1e3 for x in paired],
             # Latency clusters of each round (requests that finished together shared a batch).
             "batches_per_round": {"plain": direct["round_batches"], "pixelserve": http["round_batches"]},
             # The same jobs from one client, one after another: no batch composition or queue order
             # in the latency, so what the server adds per request shows to the millisecond.
             "added_p50_one_client_ms": (http["one_client_p50"] - direct["one_client_p50"]) * 1e3,
             "one_client_p50_ms": {"plain": direct["one_client_p50"] * 1e3, "pixelserve": http["one_client_p50"] * 1e3,
                                   "requests_per_side": http["one_client_n"]},
             # Server-Timing of those requests (p50 of each stage): auth = key check, admit = quota +
             # job record, engine = queue + denoise + decode, store = encode + write, finish = job
             # record, app = all inside the server, client = what the client measured.
             "one_client_stages_p50_ms": http["stages_p50_ms"],
             # The same difference measured inside each HTTP request: the client's latency minus that
             # request's own engine call (the "engine" stage, the call the direct side times). Paired,
             # so the run-to-run drift of denoising speed between the two processes (+-20 ms at one
             # client, hundreds of ms at 32) drops out; what stays is the server's own path.
             "added_p50_paired_ms": http["around_engine_p50_ms"],
             "p50_ms": {"plain": direct["p50"] * 1e3, "pixelserve": http["p50"] * 1e3},
             # CPU time per request of the engine process vs the server process: barely moved by other
             # load on the machine, unlike the wall-clock figures.
             "cpu_ms_per_request": {"plain": direct["cpu_ms_per_request"], "pixelserve": http["cpu_ms_per_request"]},
             "added_cpu_ms_per_request": http["cpu_ms_per_request"] - direct["cpu_ms_per_request"],
             "p99_ms": {"plain": direct["p99"] * 1e3, "pixelserve": http["p99"] * 1e3},
             "peak_mib": {"plain": direct["peak_mib"], "pixelserve": http["peak_mib"]},
             "note": f"{n} concurrent clients, Karlo t2i {HTTP_SIZE} px {STEPS} steps png base64, tiny-sd; "
                     "baseline: the same engine jobs submitted directly, rounds alternating"}]


def row_batching(run_part, cache: Path, repeat: int, quick: bool) -> list[dict]:
    n = 4 if quick else 16
    plain = run_part("plain_one_at_a_time", cache, n=n, repeat=repeat)
    batched = run_part("engine_concurrent", cache, n=n, repeat=repeat, batch=n)
    checked = run_part("engine_concurrent", cache, n=n, repeat=repeat, batch=n, nsfw=True)
    # Were NSFW scoring on the device thread, each image would cost its denoising plus its scoring.
    serial = 1 / (1 / batched["img_s"] + checked["nsfw_ms_per_image"] / 1e3)
    return [{"workload": "cpu_batching", "unit": "img/s", "plain": plain["img_s"],
             "pixelserve": batched["img_s"], "target": ">= 2x", "ratio": batched["img_s"] / plain["img_s"],
             "p50_ms": batched["p50"] * 1e3, "p99_ms": batched["p99"] * 1e3,
             "nsfw_check": {"img_s": checked["img_s"], "scoring_ms_per_image": checked["nsfw_ms_per_image"],
                            "img_s_estimate_if_scored_on_the_device_thread": serial,
                            "note": "every request asks for the NSFW check; scored off the device thread "
                                    "while the next batch denoises"},
             "peak_mib": {"plain": plain["peak_mib"], "pixelserve": batched["peak_mib"]},
             "note": f"{n} concurrent requests, {SIZE} px, {STEPS} steps, tiny-sd"}]


def rows_compile(run_part, cache: Path, repeat: int, quick: bool) -> list[dict]:
    """cpu_compile and restart_to_ready (one cold and one warm compiled start)."""
    import numpy as np
    from PIL import Image

    eager = run_part("plain_latency", cache, repeat=repeat)
    compiled = run_part("engine_compiled", cache, repeat=repeat)  # cold: compiles into the cache
    warm = run_part("engine_compiled", cache, repeat=repeat)  # warm: the persistent cache is used
    diff = np.abs(np.asarray(Image.open(eager["image"]), dtype=int)
                  - np.asarray(Image.open(warm["image"]), dtype=int)).max()
    return [
        {"workload": "cpu_compile", "unit": "s", "plain": eager["s"], "pixelserve": warm["s"],
         "target": "faster, output equal within tolerance", "ratio": eager["s"] / warm["s"],
         "max_abs_pixel_diff": int(diff), "peak_mib": {"plain": eager["peak_mib"], "pixelserve": warm["peak_mib"]}},
        {"workload": "restart_to_ready", "unit": "s", "plain": compiled["ready_s"], "pixelserve": warm["ready_s"],
         "target": "<= 30 s with a warm cache", "ratio": compiled["ready_s"] / warm["ready_s"],
         "note": "plain = start with a cold compile cache; pixelserve = restart with it warm"},
    ]


#: workload -> row builder; rows_compile makes two rows, so both names point at it.
ROWS = {"cpu_server_overhead": row_server_overhead, "cpu_batching": row_batching,
        "cpu_compile": rows_compile, "restart_to_ready": rows_compile}
