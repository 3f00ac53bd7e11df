"""``EngineClient`` on Ray Serve: many GPUs on many machines behind the same API.

Each model group is one Serve deployment (application ``<prefix>-<group>``) whose replicas each
hold the group's models on one device (``num_gpus`` per replica on GPU machines). Requests reach
them through a ``DeploymentHandle``:

- Serve's own batching (``@serve.batch``) collects a replica's concurrent requests; inside a
  collected batch, requests sharing a batch key (engine/runners/batching.py, the local engine's rule) run
  as one pipeline call, the rest one after another.
- Autoscaling on queue length: between ``min_replicas`` and ``max_replicas``, aiming at
  ``target_ongoing_requests`` per replica.
- Multiplexing (``serve.multiplexed``): a request's checkpoint/VAE/LoRA/embedding set is its
  "model id", so Serve sends it to a replica that served that set recently (each replica keeps
  ``max_adapter_sets``), whose caches are warm.
- A replica that dies mid-request (kill -9, OOM killer, lost node) fails the call; the job is
  sent again once to another replica (``max_attempts``). A job is answered once, so the service
  charges it once.
- Progress: a replica's ``generate`` is a streaming method (``handle.options(stream=True)``): it
  yields ``("progress", step, total, preview)`` after each denoising step (preview: JPEG bytes or
  None), then the result.
- Model checks run in the API process: at connect, a replica of each group sends the tokenizers it
  loaded (``text_infos``), and ``check`` runs the same ``engine/checks.py`` as the local engine.

``ray`` is imported lazily: the API process starts without it unless ``engine = "ray"``. The
replicas run ``LocalEngine`` (torch) in Ray's worker processes, never in the API process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelserve.core.model_config import ModelSpec
from pixelserve.core.request import GenerationRequest, GenerationResult
from pixelserve.engine import checks
from pixelserve.engine.client import EngineHealth, ModelInfo, ProgressCallback, report
from pixelserve.engine.runners.batching import batch_key
from pixelserve.engine.runners.errors import pack, unpack
from pixelserve.engine.runners.ray_placement import Stopped, wait_running
from pixelserve.errors import Cancelled, EngineFailure, InvalidRequest, NotReady, Overloaded, PixelserveError

log = logging.getLogger(__name__)


def adapter_key(request: GenerationRequest) -> str:
    """The multiplexed model id of a request: its checkpoint/VAE/LoRA/embedding set ("": none)."""
    parts = []
    if request.checkpoint:
        parts.append(f"checkpoint={request.checkpoint}")
    if request.vae:
        parts.append(f"vae={request.vae}")
    parts += [f"lora={x.path}@{x.weight}" for x in request.loras]
    parts += [f"ti={x.path}:{x.token}" for x in request.textual_inversions]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] if parts else ""


def model_groups(specs: dict[str, ModelSpec], groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Group name -> model ids; a model no group names is a group of its own."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for name, ids in groups.items():
        unknown = [m for m in ids if m not in specs]
        if unknown:
            raise ValueError(f"ray_model_groups[{name!r}] names unknown models: {', '.join(unknown)}")
        out[name] = list(ids)
        seen.update(ids)
    for mid in specs:
        if mid not in seen:
            out[mid] = [mid]
    return out


@dataclass(frozen=True)
class ReplicaOptions:
    """How each group's deployment is sized (from settings; see deploy/serve.yaml)."""

    num_gpus: float = 0
    num_cpus: float = 1
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2
    upscale_delay_s: float = 10
    downscale_delay_s: float = 300
    max_batch_size: int = 1
    batch_wait_s: float = 0.0
    max_adapter_sets: int = 4

    def deployment_options(self, name: str) -> dict[str, Any]:
        # Enough requests in a replica for its batches to fill, and some queued beyond the target.
        ongoing = max(self.max_batch_size, math.ceil(2 * self.target_ongoing_requests), 2)
        options: dict[str, Any] = dict(name=name, max_ongoing_requests=ongoing,
                                       ray_actor_options={"num_gpus": self.num_gpus, "num_cpus": self.num_cpus})
        if self.max_replicas > self.min_replicas:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s}
        else:
            options["num_replicas"] = self.min_replicas
        return options


def build_application(specs: dict[str, ModelSpec], cache_dir: Path, options: ReplicaOptions,
                      engine_kwargs: dict, name: str):
    """The Serve application of one model group (what ``serve.run`` or a serve config deploys)."""
    from ray import serve

    @serve.deployment
    class EngineReplica:
        """One replica: the group's models on one device, in a LocalEngine."""

        async def __init__(self):
            from pixelserve.engine.runners.local import LocalEngine

            self.engine = LocalEngine(specs, cache_dir, **engine_kwargs)
            await self.engine.start()
            await self.engine.wait_ready()  # Serve counts the replica up only once this returns
            if self.engine.health().loading_error:
                raise RuntimeError(self.engine.health().loading_error)
            self.run_batch.set_max_batch_size(options.max_batch_size)
            self.run_batch.set_batch_wait_timeout_s(options.batch_wait_s)
            self.replica_id = serve.get_replica_context().replica_id.unique_id
            self.adapter_requests: dict[str, GenerationRequest] = {}

        @serve.multiplexed(max_num_models_per_replica=options.max_adapter_sets)
        async def adapter_set(self, key: str) -> tuple[str, ...]:
            """Make a request's adapter set resident on this replica: its files must be safetensors
            (the engine applies them per request; see engine/weights/formats.detect_format)."""
            from pixelserve.engine.weights.formats import WeightsFormatError, detect_format

            request = self.adapter_requests[key]
            files = [("checkpoint", request.checkpoint), ("vae", request.vae)]
            files += [("loras", x.path) for x in request.loras]
            files += [("textual_inversions", x.path) for x in request.textual_inversions]
            for field_name, path in files:
                if path is not None:
                    try:
                        detect_format(Path(path))
                    except WeightsFormatError as e:
                        raise InvalidRequest(str(e), field=field_name) from None
            return tuple(str(path) for _, path in files if path)

        def text_infos(self) -> dict:
            """What the API process needs to run the model checks itself (engine/checks.py)."""
            return self.engine.text_infos()

        async def generate(self, job_id: str, request: GenerationRequest):
            """Streamed (``handle.options(stream=True)``): ``("progress", step, total, preview)`` after each
            denoising step, then the result (or ``("error", ...)``)."""
            key = serve.get_multiplexed_model_id()
            if key:  # the loader runs only when the set is not resident yet; it reads the files from here
                self.adapter_requests[key] = request
                try:
                    await self.adapter_set(key)
                except PixelserveError as e:
                    yield ("error", *pack(e))
                    return
                finally:
                    self.adapter_requests.pop(key, None)
            steps: asyncio.Queue = asyncio.Queue()
            run = asyncio.ensure_future(self.run_batch((job_id, request,
                                                        lambda s, t, p=None: steps.put_nowait((s, t, p)))))
            try:
                while not run.done():
                    step = asyncio.ensure_future(steps.get())
                    await asyncio.wait({step, run}, return_when=asyncio.FIRST_COMPLETED)
                    if step.done():
                        yield ("progress", *step.result())
                    else:
                        step.cancel()
                while not steps.empty():
                    yield ("progress", *steps.get_nowait())
                yield run.result()
            finally:
                if not run.done():  # the caller went away: the job stops before its next step
                    run.cancel()

        @serve.batch
        async def run_batch(self, items: list[tuple[str, GenerationRequest, Any]]) -> list:
            """Serve's batch, split by batch key: compatible requests share one pipeline call."""
            groups: dict[Any, list[int]] = {}
            for i, (_, request, _progress) in enumerate(items):
                k = batch_key(request) if options.max_batch_size > 1 else None
                groups.setdefault(("alone", i) if k is None else ("key", k), []).append(i)
            out: list = [None] * len(items)
            for indices in groups.values():
                try:
                    results = await self.engine.execute([items[i][:2] for i in indices],
                                                        progress=[items[i][2] for i in indices])
                except Exception as e:  # noqa: BLE001 - answered per request, the replica goes on
                    results = [e] * len(indices)
                for i, result in zip(indices, results):
                    if isinstance(result, GenerationResult):
                        result.worker = self.replica_id
                        out[i] = result
                    else:
                        out[i] = ("error", *pack(result))
            return out

    return EngineReplica.options(**options.deployment_options(name)).bind()


class RayEngine:
    def __init__(self, specs: dict[str, ModelSpec], cache_dir: Path, *, address: str | None = None,
                 deploy: bool = True, groups: dict[str, list[str]] | None = None,
                 replicas: ReplicaOptions = ReplicaOptions(), app_prefix: str = "pixelserve",
                 max_queue: int = 64, max_attempts: int = 2, **engine_kwargs):
        self.specs = dict(specs)
        self.cache_dir = Path(cache_dir)
        self.address = address
        self.deploy = deploy
        self.groups = model_groups(self.specs, groups or {})
        self.group_of = {mid: g for g, ids in self.groups.items() for mid in ids}
        self.replicas = replicas
        self.app_prefix = app_prefix
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        # LocalEngine options for the replicas; each holds one device ("auto": the GPU Ray gave it).
        self.engine_kwargs = dict(engine_kwargs, max_queue=max_queue)
        self._handles: dict[str, Any] = {}
        self._text_info: dict = {}  # model id -> checks.TextInfo, from a replica of each group
        self._responses: dict[str, Any] = {}
        self._ready = False
        self._loading_error: str | None = None
        self._waiting: str | None = None  # what holds the deployments up (ray_placement.py)
        self._stopping = threading.Event()
        self._task: asyncio.Task | None = None
        self._started_ray = False
        self.resent = 0  # jobs sent again after their replica died

    def app_name(self, group: str) -> str:
        return f"{self.app_prefix}-{group}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="ray-engine-connect")

    async def wait_ready(self) -> None:
        await self._task

    async def _connect(self) -> None:
        try:
            await asyncio.to_thread(self._connect_blocking)
        except Stopped:
            return
        except Exception as e:  # the cluster is unreachable or a replica cannot load: not ready, say why
            log.exception("Ray Serve engine failed to start")
            self._loading_error = f"{type(e).__name__}: {e}"
            return
        self._ready = True
        log.info("Ray Serve engine ready: %s", ", ".join(self.app_name(g) for g in self.groups))

    def _connect_blocking(self) -> None:
        import ray
        from ray import serve

        if not ray.is_initialized():
            ray.init(address=self.address, namespace="pixelserve", log_to_driver=False)
            self._started_ray = self.address is None
        if self.deploy:
            serve.start(proxy_location="Disabled")  # requests come through handles, not Serve's HTTP
            # Deployed by another API process or by `serve deploy` (deploy/serve.yaml): a second
            # serve.run would replace the running replicas, so this process only finds them.
            running = {name for name, app in serve.status().applications.items()
                       if app.status in ("RUNNING", "DEPLOYING")}
            targets = [serve.RunTarget(build_application({m: self.specs[m] for m in ids}, self.cache_dir,
                                                         self.replicas, self.engine_kwargs, f"engine-{group}"),
                                       name=self.app_name(group), route_prefix=None)
                       for group, ids in self.groups.items() if self.app_name(group) not in running]
            if targets:  # without waiting: serve.run would wait in silence for a replica with no room
                serve.run_many(targets, wait_for_applications_running=False)
        wait_running([self.app_name(g) for g in self.groups], self._stopping, self._set_waiting)
        for group in self.groups:
            self._handles[group] = serve.get_app_handle(self.app_name(group))
            # The model checks run here, in the API process, with the tokenizers a replica loaded.
            self._text_info.update(self._handles[group].text_infos.remote().result())

    def _set_waiting(self, waiting: str | None) -> None:
        self._waiting = waiting

    async def stop(self) -> None:
        """Cancels this process's requests; the deployments stay up for the other API replicas."""
        for response in list(self._responses.values()):
            response.cancel()
        self._stopping.set()
        if self._task is not None:  # the connect thread sees _stopping within a poll; Ray must not go
            await asyncio.wait({self._task}, timeout=10)  # away under it (it would start another)
        if self._started_ray:
            import ray

            await asyncio.to_thread(ray.shutdown)

    # -- jobs --------------------------------------------------------------------------------
    def check(self, request: GenerationRequest) -> None:
        """The model checks, here in the API process, before anything is recorded or sent to a replica."""
        checks.check_model(request, self.specs, self._text_info)

    async def submit(self, job_id: str, request: GenerationRequest,
                     on_progress: ProgressCallback | None = None) -> GenerationResult:
        if not self._ready:
            raise NotReady(self._loading_error or self._waiting
                           or "the Ray Serve deployments are starting; retry shortly")
        if request.model not in self.group_of:
            raise EngineFailure(f"unknown model {request.model!r}")
        if len(self._responses) >= self.max_queue:
            raise Overloaded(f"queue full ({self.max_queue} jobs waiting); retry later")
        handle = self._handles[self.group_of[request.model]]
        key = adapter_key(request)
        if key:
            handle = handle.options(multiplexed_model_id=key)
        outcome = await self._call(handle.options(stream=True), job_id, request, on_progress)
        if isinstance(outcome, tuple):
            raise unpack(outcome[1:])
        return outcome

    async def _call(self, handle, job_id: str, request: GenerationRequest, on_progress: ProgressCallback | None):
        from ray import exceptions as ray_errors
        from ray.serve.exceptions import BackPressureError, RequestCancelledError

        attempt = 1
        while True:
            response = handle.generate.remote(job_id, request)
            self._responses[job_id] = response
            try:
                async for item in response:
                    if isinstance(item, tuple) and item[0] == "progress":
                        report(on_progress, item[1], item[2], item[3] if len(item) > 3 else None)
                        continue
                    return item
                raise EngineFailure("the replica ended the job without an answer")
            except asyncio.CancelledError:  # the client went away: stop the replica's work too
                response.cancel()
                raise
            except RequestCancelledError:
                raise Cancelled("cancelled") from None
            except BackPressureError:
                raise Overloaded("every replica's queue is full; retry later") from None
            except (ray_errors.ActorDiedError, ray_errors.ActorUnavailableError, ray_errors.RayActorError) as e:
                if attempt >= self.max_attempts:
                    raise EngineFailure(f"the replica died {attempt} times running this job: {e}") from None
                attempt += 1
                self.resent += 1
                log.warning("replica died running job %s; sending it again (attempt %d)", job_id, attempt)
            except ray_errors.RayTaskError as e:  # a bug in the replica: its own error, not a 500 loop
                raise EngineFailure(f"generation failed: {e.cause if e.cause else e}") from None
            finally:
                self._responses.pop(job_id, None)

    async def postprocess(self, job_id: str, request: GenerationRequest, image) -> GenerationResult:
        return await self.submit(job_id, request.with_(task="post", init_image=image))

    def cancel(self, job_id: str) -> bool:
        response = self._responses.get(job_id)
        if response is None:
            return False
        response.cancel()
        return True

    # -- introspection -----------------------------------------------------------------------
    def health(self) -> EngineHealth:
        return EngineHealth(ready=self._ready, devices=tuple(f"ray:{self.app_name(g)}" for g in self.groups),
                            queue_depth=len(self._responses), queue_capacity=self.max_queue,
                            running=len(self._responses), loading_error=self._loading_error, waiting=self._waiting,
                            detail={"ray_address": self.address or "local", "resent_after_replica_death": self.resent})

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.of(s, loaded=self._ready) for s in self.specs.values()]
