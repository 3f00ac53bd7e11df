"""Per-request adapters and overrides on a loaded model, none of which leaks into the next request.

The service resolves every asset to a local safetensors path before the engine sees the request;
here those files are loaded (safetensors only, nothing downloaded) and applied for one call:

- ``checkpoint``: another checkpoint of the model's family, loaded through the registry's loader
  (diffusers folder or one file; a single file takes the architecture of the model it replaces)
  and kept in a bounded cache. It becomes this call's *base*: its own LoRA state and caches.
- ``vae``: one AutoencoderKL file (original or diffusers layout), its config taken from the
  model's own VAE; swapped into this call's pipeline only (families/base.py builds a fresh
  pipeline object per call, so nothing shared is modified).
- LoRAs: loaded with diffusers' PEFT integration (``load_lora_weights(state_dict, adapter_name)``)
  and kept loaded per base (bounded, least recently used deleted). Each call activates exactly
  its own set with ``set_adapters(names, weights)``; a call without LoRAs runs ``disable_lora()``,
  whose layers compute ``base_layer(x)`` only, so it gets the base model's output exactly.
  Adapters stay unfused: fusing changes the base weights and unfusing restores them only up to
  float error. With ``PIXELSERVE_COMPILE`` the UNet's LoRAs go into fixed slots instead, hotswapped
  in place with diffusers' ``enable_lora_hotswap`` machinery, so that switching LoRAs or weights
  recompiles nothing (``lora_slots.py``); the text encoders, not compiled, keep named adapters.
- Textual inversions: ``load_textual_inversion`` adds tokens to a tokenizer and rows to a text
  encoder's embedding table. It is run on a *copy* of the tokenizer, and the enlarged embedding
  table is swapped in only while this request's prompts are encoded, then the original table (the
  very same module) is put back: the next request sees the tokenizer and text encoder untouched.
  The copies are cached per set of embeddings (bounded).
"""

from __future__ import annotations

import collections
import copy
import hashlib
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pixelserve.core.request import LoraRef, TextualInversionRef
from pixelserve.engine.weights import gc_freeze
from pixelserve.engine.adapters import lora_slots
from pixelserve.errors import InvalidRequest

log = logging.getLogger(__name__)

#: LoRAs kept loaded per base model (a request may use at most this many).
MAX_LORAS = 8
#: Checkpoint overrides kept loaded per model and device (each is a whole model).
MAX_CHECKPOINTS = 1
MAX_VAES = 2
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


def base_for(model: Any, checkpoint: str | None) -> Base:
    """This call's base: the model itself, or the checkpoint override (loaded once, cached)."""
    if checkpoint is None:
        return own_base(model)
    cache = model.state.get("checkpoints")
    if cache is None:
        cache = model.state["checkpoints"] = LRU(MAX_CHECKPOINTS, on_evict=lambda _, b: _release(model, b))
    key = file_key(checkpoint)
    base = cache.get(key)
    if base is None:
        base = Base(_load_checkpoint(model, Path(checkpoint)), f"checkpoint:{key}")
        cache.put(key, base)
    return base


def _architecture_config(model: Any) -> Path | None:
    """Configs for a single-file override: the model's own, so the override has its architecture."""
    from pixelserve.engine.weights.formats import detect_format

    if model.spec.config is not None:
        return model.spec.config
    if model.weights is not None and detect_format(model.weights) == "diffusers":
        return model.weights
    return None  # the configs shipped for the family


def _load_checkpoint(model: Any, path: Path) -> Any:
    from pixelserve.engine.families import family_for
    from pixelserve.engine.weights.loading import default_dtype, load_pipeline

    family = family_for(model.spec.family)
    log.info("loading checkpoint override %s for model %s", path, model.spec.id)
    try:
        pipe = load_pipeline(family.pipeline_class(), path, family.name, default_dtype(model.device),
                             model.cache_dir, config_dir=_architecture_config(model))
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise InvalidRequest(f"cannot load {path.name} as a {family.name} checkpoint: {e}", field="checkpoint") from e
    pipe.to(model.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _release(model: Any, base: Base) -> None:
    import torch

    del base.pipe
    gc_freeze.collect_all()  # cycles among objects frozen at start too
    if model.device.startswith("cuda"):
        torch.cuda.empty_cache()


# -- VAE ---------------------------------------------------------------------------------------
def vae_for(model: Any, path: str) -> Any:
    """An AutoencoderKL from one safetensors file, with the model's own VAE config (cached)."""
    from diffusers import AutoencoderKL

    from pixelserve.engine.weights import single_file

    cache = model.state.get("vaes")
    if cache is None:
        cache = model.state["vaes"] = LRU(MAX_VAES)
    key = file_key(path)
    vae = cache.get(key)
    if vae is not None:
        return vae
    own = model.pipe.vae
    config = Path(model.cache_dir) / "vae-config" / model.spec.id
    config.mkdir(parents=True, exist_ok=True)
    own.save_config(config)
    work = Path(model.cache_dir) / "single_file"
    try:
        vae = AutoencoderKL.from_single_file(
            str(single_file._safetensors_path(Path(path), work)), config=str(config), local_files_only=True,
            torch_dtype=own.dtype)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise InvalidRequest(f"cannot load {Path(path).name} as this model's VAE: {e}", field="vae") from e
    vae.to(model.device).eval()
    cache.put(key, vae)
    return vae


# -- LoRA --------------------------------------------------------------------------------------
def lora_name(path: str) -> str:
    return "lora_" + hashlib.sha1(repr(file_key(path)).encode()).hexdigest()[:16]


def activate_loras(base: Base, loras: tuple[LoraRef, ...]) -> tuple:
    """Make exactly ``loras`` (with their weights) active on ``base``; returns a key naming that state."""
    if len(loras) > MAX_LORAS:
        raise InvalidRequest(f"at most {MAX_LORAS} LoRAs per request", field="loras")
    if hasattr(base.pipe.unet, "_orig_mod"):
        return _activate_slots(base, loras)
    weights: dict[str, float] = {}
    for ref in loras:
        name = lora_name(ref.path)
        if base.loras.get(name) is None:
            _load_lora(base, name, ref)
        weights[name] = weights.get(name, 0.0) + float(ref.weight)
    if len(base.loras) == 0:
        return ()  # nothing was ever loaded: the modules are untouched
    pipe = lora_view(base.pipe)
    if weights:
        pipe.enable_lora()
        pipe.set_adapters(list(weights), list(weights.values()))
    else:
        pipe.disable_lora()
    return tuple(sorted(weights.items()))


def _activate_slots(base: Base, loras: tuple[LoraRef, ...]) -> tuple:
    """activate_loras for a torch.compile'd UNet: fixed slots, nothing recompiled (lora_slots.py)."""
    from safetensors.torch import load_file

    if base.slots is None:
        base.slots = lora_slots.Slots(base.pipe.unet._orig_mod)
    wanted: dict[str, tuple[lora_slots.Parsed, float]] = {}
    for ref in loras:
        name = lora_name(ref.path)
        parsed = wanted[name][0] if name in wanted else base.parsed.get(name)
        if parsed is None:
            try:
                parsed = lora_slots.parse(base.pipe, name, load_file(ref.path))
            except (ValueError, RuntimeError, KeyError, OSError) as e:
                raise InvalidRequest(f"LoRA {ref.name!r} does not fit this model: {e}", field="loras") from e
            base.parsed.put(name, parsed)
        wanted[name] = (parsed, wanted.get(name, (None, 0.0))[1] + float(ref.weight))
    if not wanted and len(base.parsed) == 0:
        return ()  # nothing was ever loaded: the modules are untouched
    lora_slots.activate(base.pipe, base.slots, [(name, p, w) for name, (p, w) in wanted.items()])
    return tuple(sorted((name, w) for name, (_, w) in wanted.items()))


def deactivate_loras(base: Base) -> None:
    if base.slots is not None:
        lora_slots.deactivate(base.pipe, base.slots)
    else:
        lora_view(base.pipe).disable_lora()


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


def _load_lora(base: Base, name: str, ref: LoraRef) -> None:
    from safetensors.torch import load_file

    # The tensors are read here (safetensors only), so diffusers never looks for a file or pickle.
    try:
        state = load_file(ref.path)
        with warnings.catch_warnings():  # peft warns that a model holds several adapters: it is meant to
            warnings.simplefilter("ignore", UserWarning)
            lora_view(base.pipe).load_lora_weights(state, adapter_name=name)
    except (ValueError, RuntimeError, KeyError, OSError) as e:
        if name in _loaded_adapters(base.pipe):
            lora_view(base.pipe).delete_adapters(name)
        raise InvalidRequest(f"LoRA {ref.name!r} does not fit this model: {e}", field="loras") from e
    if name not in _loaded_adapters(base.pipe):  # no tensor named a module of this model: nothing loaded
        raise InvalidRequest(f"LoRA {ref.name!r} does not fit this model: none of its tensors names one of "
                             "its layers", field="loras")
    base.loras.put(name, file_key(ref.path))


def _loaded_adapters(pipe: Any) -> set[str]:
    return {a for names in lora_view(pipe).get_list_adapters().values() for a in names}


# -- textual inversion -------------------------------------------------------------------------
@dataclass
class Encoder:
    """One text encoder and the tokenizer to use with it for this call."""

    tokenizer: Any
    text_encoder: Any
    #: token id -> the ids it stands for (a multi-vector embedding's extra tokens)
    expansions: dict[int, list[int]] = field(default_factory=dict)


def text_encoders(pipe: Any) -> list[Encoder]:
    pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")]
    return [Encoder(getattr(pipe, t), getattr(pipe, e)) for t, e in pairs
            if getattr(pipe, t, None) is not None and getattr(pipe, e, None) is not None]


#: SDXL embeddings ship one tensor per text encoder under these names.
_SDXL_KEYS = ("clip_l", "clip_g")


def ti_key(refs: tuple[TextualInversionRef, ...]) -> tuple:
    return tuple((file_key(r.path), r.token) for r in refs)


@contextmanager
def textual_inversions(base: Base, refs: tuple[TextualInversionRef, ...]) -> Iterator[list[Encoder]]:
    """The base's encoders with ``refs`` loaded, for the duration of the block only."""
    encoders = text_encoders(base.pipe)
    if not refs:
        yield encoders
        return
    key = ti_key(refs)
    loaded = base.ti_sets.get(key)
    if loaded is None:
        loaded = _load_ti_set(base.pipe, encoders, refs)
        base.ti_sets.put(key, loaded)
    originals = [enc.text_encoder.get_input_embeddings() for enc in encoders]
    try:
        for enc, (tokenizer, table, expansions) in zip(encoders, loaded):
            enc.text_encoder.set_input_embeddings(table)
            enc.tokenizer, enc.expansions = tokenizer, expansions
        yield encoders
    finally:
        for enc, table in zip(encoders, originals):
            enc.text_encoder.set_input_embeddings(table)


def _ti_tensor(state: dict, index: int, n_encoders: int, ref: TextualInversionRef) -> Any:
    if n_encoders == 1:
        if len(state) != 1:
            raise InvalidRequest(f"textual inversion {ref.name!r} holds {len(state)} tensors; an SD embedding "
                                 "holds one", field="textual_inversions")
        return next(iter(state.values()))
    if not all(k in state for k in _SDXL_KEYS):
        raise InvalidRequest(f"textual inversion {ref.name!r} is not an SDXL embedding (needs clip_l and clip_g)",
                             field="textual_inversions")
    return state[_SDXL_KEYS[index]]


def _load_ti_set(pipe: Any, encoders: list[Encoder], refs: tuple[TextualInversionRef, ...]) -> list[tuple]:
    """Per encoder: (tokenizer copy with the tokens, enlarged embedding table, multi-vector expansions)."""
    from safetensors.torch import load_file

    states = [load_file(r.path) for r in refs]
    out = []
    for index, enc in enumerate(encoders):
        tokenizer = copy.deepcopy(enc.tokenizer)
        te = enc.text_encoder
        original, vocab_size = te.get_input_embeddings(), te.config.vocab_size
        expansions: dict[int, list[int]] = {}
        try:
            for ref, state in zip(refs, states):
                tensor = _ti_tensor(state, index, len(encoders), ref)
                if tensor.ndim == 1:
                    tensor = tensor[None]
                try:
                    pipe.load_textual_inversion(tensor, token=ref.token, tokenizer=tokenizer, text_encoder=te)
                except ValueError as e:
                    raise InvalidRequest(f"textual inversion {ref.name!r}: {e}", field="textual_inversions") from e
                tokens = [ref.token] + [f"{ref.token}_{i}" for i in range(1, tensor.shape[0])]
                ids = tokenizer.convert_tokens_to_ids(tokens)
                expansions[ids[0]] = list(ids)
            table = te.get_input_embeddings()
        finally:  # the shared encoder gets its own table back, whatever happened
            te.set_input_embeddings(original)
            te.config.vocab_size = vocab_size
        out.append((tokenizer, table, expansions))
    return out


@contextmanager
def applied(model: Any, checkpoint: str | None, loras: tuple[LoraRef, ...]) -> Iterator[tuple[Base, tuple]]:
    """This call's base with exactly ``loras`` active; outside a call no LoRA is ever active."""
    base = base_for(model, checkpoint)
    key = activate_loras(base, loras)
    try:
        yield base, key
    finally:
        if key:
            deactivate_loras(base)
