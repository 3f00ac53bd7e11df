"""The base of one call (the model's own pipeline or a checkpoint override) and its bounded caches.

Everything a request adds is kept per base: its loaded LoRAs (or a compiled UNet's LoRA slots), its
prompt embeddings and its textual-inversion tokenizer copies, each bounded (least recently used out).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pixelserve.engine.adapters import lora_slots

#: LoRAs kept loaded per base model (a request may use at most this many).
MAX_LORAS = 8
#: Prompt embeddings remembered per base model (engine/text/prompts.py).
MAX_EMBEDDINGS = 256
#: Tokenizer copies with a set of textual inversions added, per base model.
MAX_TI_SETS = 4


class LRU:
    """A small bounded mapping; the least recently used entry goes first (``on_evict`` is told)."""

    def __init__(self, maxsize: int, on_evict: Callable[[Any, Any], None] | None = None):
        self.maxsize = maxsize
        self.on_evict = on_evict
        self._items: collections.OrderedDict = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            old_key, old = self._items.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(old_key, old)

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list:
        return list(self._items)


def file_key(path: str | Path) -> tuple[str, int, int]:
    """Identity of a weights file or folder: a replaced file at the same path is another adapter."""
    p = Path(path).resolve()
    st = p.stat()
    if p.is_dir():
        st = max((f.stat() for f in p.rglob("*") if f.is_file()), key=lambda s: s.st_mtime_ns, default=st)
    return str(p), st.st_size, st.st_mtime_ns


def cached_load(model: Any, cache_name: str, maxsize: int, path: str | Path, load: Callable[[tuple], Any],
                on_evict: Callable[[Any, Any], None] | None = None) -> Any:
    """What ``load(file_key(path))`` gives, kept in the model's bounded cache ``cache_name``."""
    cache = model.state.get(cache_name)
    if cache is None:
        cache = model.state[cache_name] = LRU(maxsize, on_evict=on_evict)
    key = file_key(path)
    value = cache.get(key)
    if value is None:
        value = load(key)
        cache.put(key, value)
    return value


@dataclass(eq=False)
class Base:
    """The pipeline whose UNet and text encoders a call runs: the model's own or a checkpoint override."""

    pipe: Any
    label: str
    loras: LRU = field(default=None)  # adapter name -> file key
    slots: Any = None  # a compiled UNet's LoRA slots (lora_slots.Slots)
    parsed: LRU = field(default=None)  # compiled UNet: adapter name -> lora_slots.Parsed
    embeddings: LRU = field(default_factory=lambda: LRU(MAX_EMBEDDINGS))
    ti_sets: LRU = field(default_factory=lambda: LRU(MAX_TI_SETS))

    def __post_init__(self):
        if self.loras is None:
            self.loras = LRU(MAX_LORAS, on_evict=lambda name, _: lora_view(self.pipe).delete_adapters(name))
        if self.parsed is None:
            self.parsed = LRU(MAX_LORAS, on_evict=lambda name, parsed: lora_slots.forget(self.pipe, name, parsed))


def own_base(model: Any) -> Base:
    base = model.state.get("base")
    if base is None:
        base = model.state["base"] = Base(model.pipe, "model")
    return base


def lora_view(pipe: Any) -> Any:
    """``pipe`` with torch.compile'd modules unwrapped, for diffusers' LoRA methods.

    Those pick the modules to act on by class (ModelMixin / PreTrainedModel); a compiled UNet is an
    ``OptimizedModule`` and would be skipped silently, leaving its adapters as they were. The
    view is a new pipeline object around the same modules (no weight copies).
    """
    import inspect

    if not any(hasattr(m, "_orig_mod") for m in pipe.components.values()):
        return pipe
    params = set(inspect.signature(type(pipe).__init__).parameters)
    modules = {k: getattr(m, "_orig_mod", m) for k, m in pipe.components.items() if k in params}
    if "requires_safety_checker" in params:
        modules["requires_safety_checker"] = False
    return type(pipe)(**modules)
