"""What holds the Ray Serve engine's start up, without a cluster: Serve's status details and the cluster's
resources as Ray reports them, turned into a line naming the deployment and the resources; the wait
that reports it (once in the log) and ends when the applications run, fail, or the engine stops."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from pixelserve.engine.runners import ray_placement
from pixelserve.engine.runners.ray_placement import holdups, replica_asks, unplaced

NODE = {"CPU": 2.0, "memory": 8 * 2**30, "node:10.0.0.1": 1.0}


def details(*deployments) -> dict:
    """Serve's ServeInstanceDetails as a dict: (app, deployment, ray_actor_options, replicas, message)."""
    apps: dict = {}
    for app, name, options, replicas, message in deployments:
        apps.setdefault(app, {"deployments": {}})["deployments"][name] = {
            "deployment_config": {"ray_actor_options": options}, "message": message,
            "replicas": [{"state": state, "node_id": node} for state, node in replicas]}
    return {"applications": apps}


def test_replicas_on_no_node_are_unplaced_with_what_each_asks():
    d = details(("ps-a", "engine-a", {"num_cpus": 1.0, "num_gpus": 0.0}, [("RUNNING", "n1")], ""),
                ("ps-b", "engine-b", {"num_cpus": 1.0}, [("STARTING", "n1")], ""),  # placed, loading its models
                ("ps-c", "engine-c", {"num_cpus": 0.5, "num_gpus": 1, "resources": {"big": 1}},
                 [("STARTING", None), ("STARTING", None), ("RUNNING", "n1")], ""))
    found = unplaced(d, ["ps-a", "ps-b", "ps-c"])
    assert [(u.app, u.deployment, u.replicas, u.asks) for u in found] == [
        ("ps-c", "engine-c", 2, {"CPU": 0.5, "GPU": 1.0, "big": 1.0})]
    assert unplaced(d, ["ps-a", "ps-b"]) == []
    assert replica_asks(None) == {} and replica_asks({"num_cpus": 2, "memory": 2**30}) == {"CPU": 2.0, "memory": 2**30}


def test_a_replica_the_free_resources_cannot_take_is_named_with_its_ask_and_the_cluster():
    d = details(("pixelserve-c", "engine-c", {"num_cpus": 1.0}, [("STARTING", None)], ""))
    full = holdups(d, ["pixelserve-c"], free={"memory": 8 * 2**30}, total=NODE, nodes=[NODE])
    assert list(full.values()) == ["pixelserve-c (deployment engine-c): Ray cannot place 1 replica; each asks CPU 1; "
                                   "the cluster has CPU 0 of 2 free"]
    # Room for it: Ray is placing it now, nothing to report.
    assert holdups(d, ["pixelserve-c"], free={"CPU": 1.0}, total=NODE, nodes=[NODE]) == {}


def test_an_ask_no_node_can_meet_says_so():
    d = details(("big", "engine-big", {"num_cpus": 3.0, "num_gpus": 1.0}, [("STARTING", None)], ""))
    nodes = [NODE, {"CPU": 1.0, "GPU": 1.0}]  # each resource on some node, never all on one
    (text,) = holdups(d, ["big"], free={"CPU": 3.0, "GPU": 1.0}, total={"CPU": 3.0, "GPU": 1.0}, nodes=nodes).values()
    assert text == ("big (deployment engine-big): Ray cannot place 1 replica; each asks CPU 3, GPU 1; "
                    "no node has that much (the most on one node: CPU 2, GPU 1)")


def test_serves_own_message_names_other_holdups_once():
    slow = "Deployment 'engine-a' in application 'ps-a' has 1 replicas that have taken more than 30s to initialize."
    stuck = "Deployment 'engine-c' ... has 1 replicas that have taken more than 30s to be scheduled."
    d = details(("ps-a", "engine-a", {"num_cpus": 1.0}, [("STARTING", "n1")], slow),
                ("ps-c", "engine-c", {"num_cpus": 1.0}, [("STARTING", None)], stuck))
    out = holdups(d, ["ps-a", "ps-c"], free={}, total=NODE, nodes=[NODE])
    assert out[("ps-a", "engine-a")] == f"ps-a (deployment engine-a): {slow}"
    assert [k[:2] for k in out] == [("ps-c", "engine-c"), ("ps-a", "engine-a")]  # ps-c once, in pixelserve's words
    assert "CPU 0 of 2 free" in out[next(k for k in out if k[0] == "ps-c")]


@pytest.fixture
def fake_cluster(monkeypatch):
    """serve.status() and the holdups, scripted poll by poll."""
    serve = pytest.importorskip("ray.serve", reason="ray[serve] is not installed")
    polls: list = []
    script: dict = {"status": [], "holdups": []}

    def status():
        polls.append(1)
        states = script["status"][min(len(polls), len(script["status"])) - 1]
        return SimpleNamespace(applications={n: SimpleNamespace(status=s, message=f"{n} broke") for n, s in states.items()})

    monkeypatch.setattr(serve, "status", status)
    monkeypatch.setattr(ray_placement, "cluster_holdups",
                        lambda apps: script["holdups"][min(len(polls), len(script["holdups"])) - 1])
    monkeypatch.setattr(ray_placement, "POLL_S", 0)
    return script


def test_the_wait_reports_a_holdup_seen_twice_and_logs_it_once(fake_cluster, caplog):
    stuck = {("ps-c", "engine-c", (("CPU", 1.0),)): "ps-c (deployment engine-c): Ray cannot place 1 replica"}
    fake_cluster["status"] = [{"ps-a": "RUNNING", "ps-c": "DEPLOYING"}] * 6 + [{"ps-a": "RUNNING", "ps-c": "RUNNING"}]
    fake_cluster["holdups"] = [{}, stuck, stuck, stuck, stuck, {}, {}]
    seen = []
    with caplog.at_level(logging.INFO, logger="pixelserve.engine.runners.ray_serve"):
        ray_placement.wait_running(["ps-a", "ps-c"], threading.Event(), seen.append)
    assert seen == [None, None, *["ps-c (deployment engine-c): Ray cannot place 1 replica"] * 3, None, None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ps-c (deployment engine-c)" in warnings[0] and "PIXELSERVE_RAY_NUM_CPUS" in warnings[0]


def test_the_wait_ends_on_a_failed_deploy_or_a_stop(fake_cluster):
    fake_cluster["holdups"] = [{}]
    fake_cluster["status"] = [{"ps-a": "DEPLOYING"}, {"ps-a": "DEPLOY_FAILED"}]
    with pytest.raises(RuntimeError, match="Deploying application ps-a failed: ps-a broke"):
        ray_placement.wait_running(["ps-a"], threading.Event(), lambda w: None)
    with pytest.raises(RuntimeError, match="'ps-b' does not exist"):
        ray_placement.wait_running(["ps-b"], threading.Event(), lambda w: None)
    fake_cluster["status"] = [{"ps-a": "DEPLOYING"}]
    stopping = threading.Event()
    with pytest.raises(ray_placement.Stopped):
        ray_placement.wait_running(["ps-a"], stopping, lambda w: stopping.set())
