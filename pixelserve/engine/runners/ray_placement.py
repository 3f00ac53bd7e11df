"""Waiting for the Ray Serve applications, and saying what holds them up.

``serve.run`` waits for an application in silence: a replica that no node has room for (three groups of
one CPU each on two CPUs, or a GPU asked of a CPU-only cluster) keeps it "DEPLOYING" for ever, and Serve
only mentions it after 30 s, in a status nobody reads. The engine deploys without waiting and polls
here instead: a deployment whose replicas Ray has not placed, and whose ask the cluster's free
resources cannot meet, is named with what each replica asks and what the cluster has, on
``/health/ready`` (``EngineHealth.waiting``) and once in the log.

The pure functions read Serve's own status details (``ServeInstanceDetails`` as a dict, as its REST
API serves them) and the cluster's resources; ``wait_running`` adds the polling.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

log = logging.getLogger("pixelserve.engine.runners.ray_serve")

POLL_S = 1.0
HINT = ("fewer groups (PIXELSERVE_RAY_MODEL_GROUPS), fewer replicas (PIXELSERVE_RAY_MIN_REPLICAS), "
        "smaller PIXELSERVE_RAY_NUM_CPUS/_NUM_GPUS, or more nodes")
_EPS = 1e-6
_BYTES = ("memory", "object_store_memory")


class Stopped(Exception):
    """The engine stopped while it waited."""


@dataclass(frozen=True)
class Unplaced:
    """Replicas of one deployment that Ray has not placed on a node."""

    app: str
    deployment: str
    replicas: int
    asks: dict[str, float]  # resources one replica asks, Ray's names ("CPU", "GPU", custom)

    @property
    def key(self) -> tuple:
        return self.app, self.deployment, tuple(sorted(self.asks.items()))


def replica_asks(ray_actor_options: dict | None) -> dict[str, float]:
    """A replica's ``ray_actor_options`` as Ray's resource names; zeros left out."""
    options = ray_actor_options or {}
    asks = {"CPU": options.get("num_cpus") or 0, "GPU": options.get("num_gpus") or 0,
            "memory": options.get("memory") or 0, **(options.get("resources") or {})}
    if options.get("accelerator_type"):
        asks[f"accelerator_type:{options['accelerator_type']}"] = 0.001  # what Ray adds for it
    return {k: float(v) for k, v in asks.items() if v}


def unplaced(details: dict, apps: Iterable[str]) -> list[Unplaced]:
    """The deployments of ``apps`` with replicas that are starting but on no node yet."""
    out = []
    for name in apps:
        app = (details.get("applications") or {}).get(name) or {}
        for dname, dep in (app.get("deployments") or {}).items():
            waiting = [r for r in dep.get("replicas") or () if r.get("state") == "STARTING" and not r.get("node_id")]
            if waiting:
                asks = replica_asks((dep.get("deployment_config") or {}).get("ray_actor_options"))
                out.append(Unplaced(name, dname, len(waiting), asks))
    return out


def fits(asks: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(k, 0) + _EPS >= v for k, v in asks.items())


def amount(key: str, value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if key in _BYTES else f"{value:g}"


def describe(u: Unplaced, free: dict[str, float], total: dict[str, float], nodes: list[dict[str, float]]) -> str:
    """One line naming the deployment, what each replica asks and what the cluster has."""
    asks = ", ".join(f"{k} {amount(k, v)}" for k, v in u.asks.items()) or "nothing"
    if not any(fits(u.asks, n) for n in nodes):
        most = ", ".join(f"{k} {amount(k, max((n.get(k, 0) for n in nodes), default=0))}" for k in u.asks)
        has = f"no node has that much (the most on one node: {most})"
    else:
        has = "the cluster has " + ", ".join(f"{k} {amount(k, free.get(k, 0))} of {amount(k, total.get(k, 0))} free"
                                             for k in u.asks)
    count = f"{u.replicas} replica{'s' if u.replicas > 1 else ''}"
    return f"{u.app} (deployment {u.deployment}): Ray cannot place {count}; each asks {asks}; {has}"


def holdups(details: dict, apps: list[str], free: dict, total: dict, nodes: list[dict]) -> dict[tuple, str]:
    """What holds ``apps`` up, by a key that stays the same while the cause does: unplaced replicas
    the free resources cannot take (or no node could), then Serve's own message on any other deployment that has one
    (a replica slow to start, a constructor that keeps failing)."""
    out = {}
    for u in unplaced(details, apps):
        if not fits(u.asks, free) or not any(fits(u.asks, n) for n in nodes):
            out[u.key] = describe(u, free, total, nodes)
    named = {k[:2] for k in out}
    for name in apps:
        app = (details.get("applications") or {}).get(name) or {}
        for dname, dep in (app.get("deployments") or {}).items():
            if dep.get("message") and (name, dname) not in named:
                out[(name, dname)] = f"{name} (deployment {dname}): {dep['message']}"
    return out


def cluster_holdups(apps: list[str]) -> dict[tuple, str]:
    """``holdups`` of the connected cluster."""
    import ray
    from ray.serve.context import _get_global_client  # the details Serve's REST API and dashboard show

    details = _get_global_client().get_serve_details()
    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    return holdups(details, apps, ray.available_resources(), ray.cluster_resources(), nodes)


def wait_running(apps: list[str], stopping: threading.Event, on_waiting: Callable[[str | None], None]) -> None:
    """Returns once every application is RUNNING; raises when one failed to deploy, ``Stopped`` when
    ``stopping`` is set. Meanwhile ``on_waiting`` gets what holds them up (None: nothing known). A
    cause seen on two polls in a row is reported (a replica is briefly on no node while Ray places it),
    and logged once at WARNING."""
    from ray import serve

    previous: set = set()
    logged: set = set()
    while not stopping.is_set():
        statuses = serve.status().applications
        pending = []
        for name in apps:
            app = statuses.get(name)
            if app is None:
                raise RuntimeError(f"Serve application {name!r} does not exist")
            if app.status == "DEPLOY_FAILED":
                raise RuntimeError(f"Deploying application {name} failed: {app.message}")
            if app.status != "RUNNING":
                pending.append(name)
        if not pending:
            if logged:
                log.info("Ray Serve applications running: %s", ", ".join(apps))
            on_waiting(None)
            return
        now = cluster_holdups(pending)
        held = {k: text for k, text in now.items() if k in previous}
        previous = set(now)
        on_waiting("; ".join(held.values()) or None)
        for key, text in held.items():
            if key not in logged:
                logged.add(key)
                log.warning("Ray Serve engine not ready: %s%s", text, f" ({HINT})" if len(key) == 3 else "")
        stopping.wait(POLL_S)
    raise Stopped()
