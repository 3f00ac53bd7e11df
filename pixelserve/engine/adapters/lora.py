"""LoRAs, loaded with diffusers' PEFT integration and kept loaded per base; each call activates
exactly its own set (see the package docstring), and a compiled UNet takes them in fixed slots
(lora_slots.py)."""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from pixelserve.core.request import LoraRef
from pixelserve.engine.adapters import lora_slots
from pixelserve.engine.adapters.base import Base, file_key, lora_view
from pixelserve.engine.adapters.checkpoint import base_for
from pixelserve.errors import InvalidRequest


def lora_name(path: str) -> str:
    return "lora_" + hashlib.sha1(repr(file_key(path)).encode()).hexdigest()[:16]


def activate_loras(base: Base, loras: tuple[LoraRef, ...]) -> tuple:
    """Make exactly ``loras`` (with their weights) active on ``base``; returns a key naming that state."""
    if len(loras) > base.loras.maxsize:  # all of them must fit in the base's LoRA cache (MAX_LORAS)
        raise InvalidRequest(f"at most {base.loras.maxsize} LoRAs per request", field="loras")
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
