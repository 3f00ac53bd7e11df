"""The Ray Serve engine on a local Ray cluster (2 CPUs, tiny models): requests spread over two
replicas and batch by key; the Karlo, OctoAI and Studio samples are served through it; a replica killed
mid-stream loses no job and charges nothing twice; autoscaling adds a replica under a queue.

Slow (a Ray cluster and replicas that load models): marked ``ray``; ``-m "not ray"`` leaves them out.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

ray = pytest.importorskip("ray", reason="ray[serve] is not installed (pip install -e '.[scale]')")
from ray import serve  # noqa: E402

from pixelserve.app import create_app  # noqa: E402
from pixelserve.core.model_config import demo_config  # noqa: E402
from pixelserve.core.request import GenerationRequest  # noqa: E402
from pixelserve.engine.runners.ray_serve import RayEngine, ReplicaOptions  # noqa: E402
from tests.api.karlo.helpers import T2I, small  # noqa: E402
from tests.api.studio.conftest import SMALL, SMALL_SETTINGS, new_key  # noqa: E402
from tests.api.studio.helpers import CREATE, balances, decode  # noqa: E402
from tests.api.studio.test_jobs import ledger  # noqa: E402
from tests.conftest import make_settings, wait_ready  # noqa: E402

pytestmark = pytest.mark.ray

SPECS = demo_config().models
GROUPS = {"tiny": list(SPECS)}  # one deployment holding the three tiny models
APP = "pixelserve-tiny"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="pixelserve-tests")
    yield
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def deployed(cluster, tiny_cache):
    """Two replicas of the tiny group, batching up to 4 images, a live preview every 2 steps."""
    engine = RayEngine(SPECS, tiny_cache, groups=GROUPS, preview_every=2,
                       replicas=ReplicaOptions(min_replicas=2, max_replicas=2, max_batch_size=4, batch_wait_s=0.05))
    asyncio.run(_start(engine))
    assert engine.health().ready, engine.health().loading_error
    return engine


async def _start(engine):
    await engine.start()
    await engine.wait_ready()


def replicas(app: str) -> list[str]:
    """The live replica actors of an application (Serve names them after it)."""
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{app}#")]


def busy_replica(app: str, timeout: float = 30) -> str:
    """A replica that is running a request right now (asked through Serve's own replica actor),
    preferably one with two (so that one of them is surely still running when it is killed)."""
    for least, wait in ((2, 5.0), (1, timeout)):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for name in replicas(app):
                if ray.get(ray.get_actor(name, namespace="serve").get_num_ongoing_requests.remote()) >= least:
                    return name
            time.sleep(0.01)
    raise AssertionError("no replica was busy")


def running_replicas(app: str) -> int:
    status = serve.status().applications[app]
    return sum(d.replica_states.get("RUNNING", 0) for d in status.deployments.values())


def test_requests_spread_over_both_replicas_and_batch_by_key(deployed):
    async def burst():
        same = [GenerationRequest(model="tiny-sd", prompt=f"a cat {i}", width=64, height=64, steps=2, seeds=(i,))
                for i in range(12)]
        other = GenerationRequest(model="tiny-sd", prompt="wide", width=96, height=64, steps=2, seeds=(99,))
        return await asyncio.gather(*(deployed.submit(f"spread-{i}", r) for i, r in enumerate([*same, other])))

    results = asyncio.run(burst())
    *same, other = results
    assert len({r.worker for r in results}) == 2  # both replicas served
    assert all(r.images[0].size == (64, 64) for r in same) and other.images[0].size == (96, 64)
    assert max(r.timings_ms["batch_size"] for r in same) > 1  # Serve's batches, stacked by batch key
    assert other.timings_ms["batch_size"] == 1  # another size: never stacked with the 64 px ones


def test_each_denoising_step_streams_back_to_the_api_process(deployed):
    """Steps, and live previews to a callback that takes them (the stream's ("progress", step, total,
    preview) items)."""
    steps, previewed = [], []

    async def go():
        result = await deployed.submit("streamed", GenerationRequest(model="tiny-sd", prompt="a cat", width=64,
                                                                     height=64, steps=3, seeds=(5,)),
                                       lambda step, total: steps.append((step, total)))
        await deployed.submit("previewed", GenerationRequest(model="tiny-sd", prompt="a cat", width=64, height=48,
                                                             steps=4, seeds=(6,)),
                              lambda step, total, preview: previewed.append((step, total, preview)))
        return result

    result = asyncio.run(go())
    assert len(result.images) == 1 and steps == [(1, 3), (2, 3), (3, 3)]
    assert [(s, t) for s, t, _ in previewed] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [s for s, _, p in previewed if p is not None] == [2, 4]
    assert all(Image.open(io.BytesIO(p)).size == (64, 48) for _, _, p in previewed if p is not None)


def test_model_checks_run_in_the_api_process_before_anything_is_written(deployed, tmp_path, tiny_cache):
    """Ray's replicas hand their tokenizers to the API process at connect: clip_skip out of range for the
    tiny text encoder is OctoAI's 422 with no job record and no quota use (it was a 500, and a failed
    job, when only the replica knew the model)."""
    from tests.service.test_model_checks import assert_refused_and_nothing_written

    settings = make_settings(tmp_path, tiny_cache, engine="ray", ray_deploy=False, ray_model_groups=GROUPS,
                             octoai_extra_sizes="64x64")
    app = create_app(settings)
    with TestClient(app) as client:
        wait_ready(client, timeout=60)
        assert_refused_and_nothing_written(client, app)


def test_an_api_process_with_the_ray_engine_never_imports_torch(deployed, tmp_path, tiny_cache):
    """An API process of its own joins this cluster and finds the deployments (as a second API replica
    would): it generates and refuses through the replicas without torch in its sys.modules."""
    from tests.service.test_model_checks import api_process

    address = ray.get_runtime_context().gcs_address
    result = api_process(tmp_path, tiny_cache, engine="ray", ray_address=address, ray_deploy=False,
                         ray_model_groups=GROUPS)
    assert result == {"ok": 200, "refused": 422, "heavy": []}


def test_requests_with_one_adapter_set_go_to_the_replica_holding_it(deployed, tmp_path):
    from pixelserve.core.request import LoraRef
    from pixelserve.engine.demo.tiny_adapters import ensure_tiny_lora
    from pixelserve.errors import InvalidRequest

    lora = ensure_tiny_lora("sd", tmp_path)
    with_set = GenerationRequest(model="tiny-sd", prompt="ink", width=64, height=64, steps=2, seeds=(1,),
                                 loras=(LoraRef("ink", str(lora), 0.7),))

    async def run():
        first = await deployed.submit("ink-0", with_set)
        await asyncio.sleep(2)  # the replica tells Serve's routers which sets it holds (asynchronously)
        return first, [await deployed.submit(f"ink-{i}", with_set.with_(seeds=(i,))) for i in range(1, 7)]

    first, then = asyncio.run(run())
    assert {r.worker for r in then} == {first.worker}  # serve.multiplexed: the set's requests follow it
    pickle_file = tmp_path / "evil.safetensors"
    pickle_file.write_bytes(b"\x80\x04not safetensors")
    bad = with_set.with_(loras=(LoraRef("evil", str(pickle_file), 1.0),))
    with pytest.raises(InvalidRequest) as e:
        asyncio.run(deployed.submit("evil", bad))
    assert e.value.field == "loras" and "safetensors" in e.value.message


def test_karlo_octoai_and_studio_samples_through_the_api(deployed, tmp_path, tiny_cache):
    from pixelserve.engine.demo.tiny_adapters import ensure_tiny_lora
    from pixelserve.service.asset_refs import PUBLIC

    # This API process finds the deployments another one made (PIXELSERVE_RAY_DEPLOY=false).
    settings = make_settings(tmp_path, tiny_cache, engine="ray", ray_deploy=False, ray_model_groups=GROUPS,
                             octoai_extra_sizes="64x64", **SMALL_SETTINGS)
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout=60)
        _, key = new_key(client.app)
        karlo = client.post(T2I, json=small(samples=2, return_type="base64_string"),
                            headers={"Authorization": f"KakaoAK {key}"})
        assert karlo.status_code == 200, karlo.text
        assert [decode(im["image"]).size for im in karlo.json()["images"]] == [(384, 384)] * 2
        studio = client.post(CREATE, headers={"X-Api-Key": key},
                             json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2})
        assert studio.status_code == 200, studio.text
        assert [decode(im["base64"]).size for im in studio.json()["images"]] == [(64, 64)] * 2
        # OctoAI's sample shape (its curl body, at a tiny size), with a LoRA from the asset library. Without
        # its style_preset: the preset's template words take the demo's SDXL prompt past 77 tokens, refused
        # by the model checks on every engine (Ray's replicas skipped them before).
        client.app.state.assets.add_file(PUBLIC, ensure_tiny_lora("sdxl", tmp_path), name="ink", kind="lora",
                                         family="sdxl")
        octo = client.post("/generate/sdxl", headers={"Authorization": f"Bearer {key}"}, json={
            "prompt": "The angel of death (Hyperrealistic:1.2), splash art", "negative_prompt": "ugly, tiling",
            "sampler": "DDIM", "cfg_scale": 11, "height": 64, "width": 64, "seed": [2748252853, None], "steps": 2,
            "num_images": 2, "loras": {"octoai:ink": 0.7}})
        assert octo.status_code == 200, octo.text
        images = octo.json()["images"]
        assert [decode(im["image_b64"]).size for im in images] == [(64, 64)] * 2
        assert images[0]["seed"] == 2748252853 and isinstance(images[1]["seed"], int)


def test_a_replica_killed_mid_stream_loses_no_job_and_charges_once(deployed, tmp_path, tiny_cache):
    # 150 steps (Studio's most) at 128 px: each job runs long enough on the victim that the kill meets
    # one mid-run, which the engine must send again (at 64 px and 20 jobs CI once caught only gaps).
    settings = make_settings(tmp_path, tiny_cache, engine="ray", ray_deploy=False, ray_model_groups=GROUPS,
                             **{**SMALL_SETTINGS, "studio_steps": 150,
                                "studio_resolutions": {f: {**SMALL, "1:1": "128x128"} for f in ("sd", "sdxl")}})
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout=60)
        _, key = new_key(client.app)
        h = {"X-Api-Key": key}
        start = balances(client, h)["dailyCredit"]
        answers, first = [], threading.Event()

        def stream(n: int) -> None:
            for i in range(n):
                r = client.post(CREATE, headers=h, json={"prompt": f"a cat {i}", "styleId": 1, "ratio": "1:1",
                                                         "sample": 1})
                answers.append(r)
                first.set()

        threads = [threading.Thread(target=stream, args=(3,)) for _ in range(4)]
        for t in threads:
            t.start()
        assert first.wait(60)
        victim = busy_replica(APP)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)  # kill -9 of one replica
        for t in threads:
            t.join(180)
        engine = client.app.state.engine
        assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers if r.status_code != 200]
        assert engine.resent >= 1  # jobs that were on the killed replica went to the other one
        assert balances(client, h)["dailyCredit"] == start - 12  # each image charged once
        with client.app.state.sessions() as s:
            from pixelserve.db.models_studio import StudioJob

            jobs = [j.id for j in s.query(StudioJob).all()]
        assert len(jobs) == 12 and all(ledger(client.app, j) == ["reserve", "settle"] for j in jobs)
    deadline = time.monotonic() + 90
    while running_replicas(APP) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running_replicas(APP) == 2 and victim not in replicas(APP)  # Serve replaced it


def test_autoscaling_adds_a_replica_under_a_queue(cluster, tiny_cache):
    serve.delete(APP)  # frees the two CPUs
    engine = RayEngine({"tiny-sd": SPECS["tiny-sd"]}, tiny_cache, app_prefix="autoscale",
                       replicas=ReplicaOptions(min_replicas=1, max_replicas=2, target_ongoing_requests=1,
                                               upscale_delay_s=0, downscale_delay_s=600))
    asyncio.run(_start(engine))
    app = "autoscale-tiny-sd"
    assert running_replicas(app) == 1
    seen = []

    async def queue_up():
        # Keep about 12 requests waiting until a second replica has come up and served some: Serve
        # scales on metrics its replicas push every 10 s, so a fixed batch of work may drain first
        # on a fast machine.
        tasks, deadline = [], time.monotonic() + 180
        while time.monotonic() < deadline:
            while sum(not t.done() for t in tasks) < 12:
                r = GenerationRequest(model="tiny-sd", prompt=f"dog {len(tasks)}", width=64, height=64, steps=30,
                                      seeds=(len(tasks),))
                tasks.append(asyncio.ensure_future(engine.submit(f"auto-{len(tasks)}", r)))
            seen.append(await asyncio.to_thread(running_replicas, app))
            if len({t.result().worker for t in tasks if t.done() and not t.exception()}) == 2:
                break
            await asyncio.sleep(0.5)
        return await asyncio.gather(*tasks)

    results = asyncio.run(queue_up())
    assert all(r.images for r in results)
    assert seen[0] == 1 and max(seen) == 2  # a second replica came up while the queue was long
    assert len({r.worker for r in results}) == 2  # and took part of it
