"""The Ray Serve engine's start on a local 2-CPU cluster: the demo's defaults come up; a group no node
has room for, or one the free CPUs cannot take, is named with its resources on /health/ready and once
in the log, stays "loading" (not an error) and comes up once there is room; the server still stops.

Slow (a Ray cluster and replicas that load models): marked ``ray``; ``-m "not ray"`` leaves them out.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from fastapi.testclient import TestClient

ray = pytest.importorskip("ray", reason="ray[serve] is not installed (pip install -e '.[scale]')")
from ray import serve  # noqa: E402

from pixelserve.app import create_app  # noqa: E402
from pixelserve.core.model_config import demo_config  # noqa: E402
from pixelserve.engine.runners import ray_placement  # noqa: E402
from pixelserve.engine.runners.ray_serve import RayEngine, ReplicaOptions  # noqa: E402
from tests.conftest import make_settings, wait_ready  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="pixelserve-ready-tests")
    yield
    serve.shutdown()
    ray.shutdown()


def until(check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not seen in {timeout} s")


def test_the_demo_defaults_start_on_two_cpus(cluster, tmp_path, tiny_cache):
    """One group per demo model asked three CPUs of two: the third never started."""
    settings = make_settings(tmp_path, tiny_cache, engine="ray", ray_app_prefix="ready")
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout=180)
        assert client.get("/health/ready").json()["devices"] == ["ray:ready-demo"]
    serve.delete("ready-demo")


def test_a_group_no_node_has_room_for_is_named_on_ready_and_logged_once(cluster, tmp_path, tiny_cache,
                                                                         caplog, monkeypatch):
    polls = []
    holdups = ray_placement.cluster_holdups
    monkeypatch.setattr(ray_placement, "cluster_holdups", lambda apps: polls.append(1) or holdups(apps))
    settings = make_settings(tmp_path, tiny_cache, engine="ray", ray_app_prefix="huge", ray_num_cpus=3)
    with caplog.at_level(logging.INFO, logger="pixelserve.engine.runners.ray_serve"):
        with TestClient(create_app(settings)) as client:
            r = until(lambda: (r := client.get("/health/ready")).json().get("waiting") and r)
            assert r.status_code == 503 and r.json()["status"] == "loading" and "error" not in r.json()
            assert r.json()["waiting"] == ("huge-demo (deployment engine-demo): Ray cannot place 1 replica; each asks "
                                           "CPU 3; no node has that much (the most on one node: CPU 2)")
            seen = len(polls)
            until(lambda: len(polls) >= seen + 3)  # still waiting, several polls later
            assert client.get("/health/ready").json()["waiting"] == r.json()["waiting"]
        # The with-block's end stopped the engine while it waited: the lifespan returned.
    warnings = [rec.getMessage() for rec in caplog.records
                if rec.levelno == logging.WARNING and rec.name == "pixelserve.engine.runners.ray_serve"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Ray Serve engine not ready: huge-demo (deployment engine-demo): Ray cannot "
                                  "place 1 replica; each asks CPU 3; no node has that much")
    assert "PIXELSERVE_RAY_NUM_CPUS" in warnings[0]
    serve.delete("huge-demo")


@ray.remote(num_cpus=1)
class HoldsACpu:
    def ready(self) -> bool:
        return True


def test_a_group_waits_named_for_a_cpu_in_use_and_starts_when_it_is_free(cluster, tiny_cache):
    holder = HoldsACpu.remote()
    assert ray.get(holder.ready.remote())
    engine = RayEngine({"tiny-sd": demo_config().models["tiny-sd"]}, tiny_cache, app_prefix="full",
                       replicas=ReplicaOptions(num_cpus=2))

    async def go():
        await engine.start()
        while engine.health().waiting is None:
            await asyncio.sleep(0.2)
        waiting = engine.health()
        ray.kill(holder)  # the CPU is free: Ray places the replica, the engine becomes ready
        await engine.wait_ready()
        after = engine.health()
        await engine.stop()
        return waiting, after

    waiting, after = asyncio.run(asyncio.wait_for(go(), 180))
    assert not waiting.ready and waiting.loading_error is None
    assert waiting.waiting == ("full-tiny-sd (deployment engine-tiny-sd): Ray cannot place 1 replica; each asks CPU 2; "
                               "the cluster has CPU 1 of 2 free")
    assert after.ready and after.waiting is None and after.loading_error is None
    serve.delete("full-tiny-sd")
