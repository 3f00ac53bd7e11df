"""The model cache: model id -> its family's pipelines, loaded once per device (engine/weights/ loads).

The cache is bounded per device in bytes (``max_bytes``; PIXELSERVE_MODEL_CACHE_GIB): a model's
size is the bytes of every parameter and buffer of its modules. Loading past the budget unloads
the least recently used models that no running job holds (``using``); models registered later
(``register``, ``get_or_load``: checkpoint overrides) go before the configured ones. Configured
models are all loaded at start; a budget smaller than all of them together is allowed and then
unloads the least recently used of them too, to be loaded again on their next request.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.demo import tiny, tiny_adapters
from pixelserve.engine.families import family_for
from pixelserve.engine.weights import gc_freeze
from pixelserve.engine.weights.loading import default_dtype, load_pipeline

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    spec: ModelSpec
    device: str
    pipe: Any  # the family's base (txt2img) pipeline; task pipelines share its components
    refiner: Any = None
    #: modules the family's task pipelines share besides pipe's own (unclip: the image encoder)
    extras: dict[str, Any] = field(default_factory=dict)
    #: where per-request overrides (checkpoint, VAE) find their single-file configs and work files
    cache_dir: Path | None = None
    #: the weights it was loaded from (a diffusers folder or one safetensors file)
    weights: Path | None = None
    #: per-model engine state: loaded adapters and bounded caches (engine/adapters/)
    state: dict[str, Any] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of every parameter and buffer of the model's modules (shared modules once)."""
        modules = {}
        for owner in (self.pipe, self.refiner):
            for value in (getattr(owner, "components", None) or {}).values():
                if isinstance(value, torch.nn.Module):
                    modules[id(value)] = value
        for value in self.extras.values():
            if isinstance(value, torch.nn.Module):
                modules[id(value)] = value
        tensors = {}
        for module in modules.values():
            for t in list(module.parameters()) + list(module.buffers()):
                tensors[id(t)] = t.numel() * t.element_size()
        return sum(tensors.values())


class ModelRegistry:
    """Loads and caches models per device, least recently used first out past ``max_bytes``.

    Thread-safe; loads are serialized per registry. ``prepare(model)`` runs after every load
    (the engine's optimisations), so a model unloaded and loaded again is prepared again.
    """

    def __init__(self, specs: dict[str, ModelSpec], cache_dir: Path, *, max_bytes: int = 0,
                 prepare: Callable[[LoadedModel], None] | None = None):
        self.specs = dict(specs)
        self.configured = frozenset(self.specs)
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max(0, int(max_bytes))  # per device; 0: unbounded
        self.prepare = prepare
        self._loaded: collections.OrderedDict[tuple[str, str], LoadedModel] = collections.OrderedDict()
        self._sizes: dict[tuple[str, str], int] = {}
        self._in_use: collections.Counter[tuple[str, str]] = collections.Counter()
        self._loaders: dict[str, Callable[[str], LoadedModel]] = {}
        self._lock = threading.RLock()

    def is_loaded(self, model_id: str, device: str) -> bool:
        return (model_id, device) in self._loaded

    def register(self, spec: ModelSpec) -> None:
        """Serve another spec (a checkpoint override); it is loaded on first ``get``."""
        with self._lock:
            self.specs.setdefault(spec.id, spec)

    def get(self, model_id: str, device: str) -> LoadedModel:
        if model_id not in self._loaders and model_id not in self.specs:
            raise KeyError(model_id)
        return self.get_or_load(model_id, device, self._loaders.get(model_id))

    def get_or_load(self, key: str, device: str, loader: Callable[[str], LoadedModel] | None = None) -> LoadedModel:
        """The cached model ``key`` on ``device``, else ``loader(device)`` (default: load ``specs[key]``).

        ``loader`` lets other code keep models the registry's budget and LRU govern without a spec.
        """
        with self._lock:
            k = (key, device)
            if k in self._loaded:
                self._loaded.move_to_end(k)
                return self._loaded[k]
            if loader is not None:
                self._loaders.setdefault(key, loader)
            model = loader(device) if loader is not None else self._load(self.specs[key], device)
            if self.prepare is not None:
                self.prepare(model)
            self._loaded[k] = model
            self._sizes[k] = model.nbytes()
            self._evict(device, keep=k)
            return model

    @contextlib.contextmanager
    def using(self, model_id: str, device: str) -> Iterator[LoadedModel]:
        """The model, held: it is not unloaded to make room until the block ends."""
        with self._lock:
            model = self.get(model_id, device)
            self._in_use[(model_id, device)] += 1
        try:
            yield model
        finally:
            with self._lock:
                self._in_use[(model_id, device)] -= 1
                if self._in_use[(model_id, device)] <= 0:
                    del self._in_use[(model_id, device)]
                self._evict(device)

    def loaded_bytes(self, device: str) -> int:
        return sum(n for (_, d), n in self._sizes.items() if d == device)

    def _evict(self, device: str, keep: tuple[str, str] | None = None) -> None:
        """Unload least recently used models on ``device`` until it is within the budget.

        Models added later go first, configured ones after them; held ones never.
        """
        if not self.max_bytes:
            return
        order = [k for k in self._loaded if k[1] == device and k != keep and k not in self._in_use]
        order.sort(key=lambda k: k[0] in self.configured)  # stable: LRU order within each group
        for k in order:
            if self.loaded_bytes(device) <= self.max_bytes:
                break
            log.info("model cache over %.2f GiB on %s: unloading %s", self.max_bytes / 2**30, device, k[0])
            self._drop(k)
        if self.loaded_bytes(device) > self.max_bytes:
            log.warning("model cache on %s holds %.2f GiB, over its %.2f GiB budget: every other model is in use",
                        device, self.loaded_bytes(device) / 2**30, self.max_bytes / 2**30)

    def _drop(self, k: tuple[str, str]) -> None:
        model = self._loaded.pop(k, None)
        self._sizes.pop(k, None)
        if model is not None:
            del model
            gc_freeze.free_memory(k[1])

    def unload(self, model_id: str, device: str) -> None:
        with self._lock:
            self._drop((model_id, device))

    def unload_all(self) -> None:
        with self._lock:
            for k in list(self._loaded):
                self._drop(k)

    def weights_path(self, spec: ModelSpec) -> Path:
        if spec.path is not None:
            return spec.path
        return tiny.ensure_tiny_model(spec.family, self.cache_dir / "tiny")

    def _load(self, spec: ModelSpec, device: str) -> LoadedModel:
        family = family_for(spec.family)
        dtype = default_dtype(device)
        path = self.weights_path(spec)
        if spec.is_demo:
            tiny_adapters.ensure_demo_parts(spec)  # its tiny refiner and IP-Adapter
        log.info("loading model %s (%s) from %s on %s", spec.id, spec.family, path, device)
        pipe, extras = family.load(path, dtype, self.cache_dir, config_dir=spec.config)
        refiner = None
        if spec.refiner is not None:
            refiner = load_pipeline(family.refiner_class(), spec.refiner, spec.family, dtype, self.cache_dir,
                                    config_dir=spec.refiner_config, base=pipe)
            refiner.to(device)
        pipe.to(device)
        for module in extras.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        pipe.set_progress_bar_config(disable=True)
        if refiner is not None:
            refiner.set_progress_bar_config(disable=True)
        return LoadedModel(spec=spec, device=device, pipe=pipe, refiner=refiner, extras=extras,
                           cache_dir=self.cache_dir, weights=path)
