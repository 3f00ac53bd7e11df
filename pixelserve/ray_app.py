"""The Ray Serve engine from settings: the API process's ``RayEngine`` (app.build_engine) and the
application builder ``serve deploy`` uses (deploy/serve.yaml), so both size the deployments alike.

Outside ``pixelserve.engine`` because it reads ``Settings`` (the engine package knows no settings).
"""

from __future__ import annotations

from pixelserve.engine.runners.ray_serve import RayEngine, ReplicaOptions, build_application, model_groups
from pixelserve.settings import Settings


def build_engine(settings: Settings) -> RayEngine:
    return RayEngine(settings.models.models, settings.cache_dir, address=settings.ray_address,
                     deploy=settings.ray_deploy, groups=group_settings(settings),
                     replicas=replica_options(settings), app_prefix=settings.ray_app_prefix,
                     max_queue=settings.max_queue, **engine_options(settings))


def build_app(args: dict):
    """Application builder for ``serve deploy`` (deploy/serve.yaml): ``args: {group: <name>}``; models
    and sizes come from the same PIXELSERVE_ settings as the API process."""
    settings = Settings()
    specs = settings.models.models
    group = args["group"]
    ids = model_groups(specs, group_settings(settings))[group]
    return build_application({m: specs[m] for m in ids}, settings.cache_dir, replica_options(settings),
                             engine_options(settings), f"engine-{group}")


#: The demo models' one group when PIXELSERVE_RAY_MODEL_GROUPS is unset.
DEMO_GROUP = "demo"


def group_settings(settings: Settings) -> dict[str, list[str]]:
    """PIXELSERVE_RAY_MODEL_GROUPS; unset with the demo models: the three share one group. One group
    per model would ask three replicas' CPUs (PIXELSERVE_RAY_NUM_CPUS each), more than a 2-core machine
    has, and the last never starts; one group fits any machine that can run one replica."""
    if settings.ray_model_groups or not settings.models.demo:
        return settings.ray_model_groups
    return {DEMO_GROUP: list(settings.models.models)}


def replica_options(settings) -> ReplicaOptions:
    return ReplicaOptions(
        num_gpus=settings.ray_num_gpus, num_cpus=settings.ray_num_cpus, min_replicas=settings.ray_min_replicas,
        max_replicas=max(settings.ray_max_replicas, settings.ray_min_replicas),
        target_ongoing_requests=settings.ray_target_ongoing_requests, upscale_delay_s=settings.ray_upscale_delay_s,
        downscale_delay_s=settings.ray_downscale_delay_s, max_batch_size=settings.max_batch_size,
        batch_wait_s=settings.max_batch_delay_ms / 1e3, max_adapter_sets=settings.ray_max_adapter_sets)


def engine_options(settings) -> dict:
    """The LocalEngine options each replica runs with (its own device: devices stays "auto";
    batches are formed by Serve, so the replica's own queue and batching stay unused)."""
    return settings.pipeline_options()
