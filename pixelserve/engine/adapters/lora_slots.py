"""LoRAs on a torch.compile'd UNet that never make it recompile when they change.

A compiled UNet's graph is guarded on the Python state it read: which adapters its layers hold,
which are active, and every adapter scale (a float). Loading LoRAs by name, as the eager path in
adapters/lora.py does, made dynamo recompile the UNet for each new LoRA, each new weight and each
new combination (each a full compile of the UNet; bench/lora_switch.py times them); after eight
of those it gave up and ran the UNet eagerly (``tests/engine/adapters/test_lora_slots.py`` shows
both).

So a compiled UNet gets fixed adapter *slots* instead (``slot0``, ``slot1``, ...), the way
diffusers' ``enable_lora_hotswap`` prepares a model for compiled hotswapping: every slot is padded
to one rank and its scales are tensors (peft's ``prepare_model_for_compiled_hotswap``). A request's
LoRAs are copied into the first slots with diffusers' hotswap (``load_lora_adapter(...,
hotswap=True)``, which writes the weights in place) and its weights are written into the scale
tensors in place. The graph then depends only on how many LoRAs a request has (0-8), so it is
compiled once per count and never again when LoRAs or weights change.

A slot is (re)built, which costs one recompile, only when a LoRA is the first to need it, touches
layers its slot does not cover, or has a higher rank than the slots (all slots then grow to it).
Text encoders are not compiled: a LoRA's text-encoder part stays an ordinary named adapter there.
The output equals the eager path's within float error: zero-padded ranks add exact zeros.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from pixelserve.errors import InvalidRequest

log = logging.getLogger(__name__)

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


@dataclass
class Parsed:
    """One LoRA file in diffusers' layout: its UNet part (slot material) and its rank there."""

    state: dict
    alphas: dict | None
    unet_rank: int  # 0: the LoRA has no UNet part
    text_encoders: tuple[str, ...]  # the text encoders it was loaded into, as adapter ``name``
    modules: frozenset[str] = frozenset()  # the UNet layers it changes


@dataclass
class Slots:
    """The adapter slots of one compiled UNet (kept on the adapters.Base that owns the UNet)."""

    unet: Any  # the UNet module inside the compiled wrapper
    holds: list[str | None] = field(default_factory=list)  # LoRA name held by each slot
    covers: list[frozenset[str]] = field(default_factory=list)  # UNet layers each slot was built on
    scales: list[list[tuple[Any, float]]] = field(default_factory=list)  # per slot: (scale tensor, alpha/rank)
    weights: list[float | None] = field(default_factory=list)  # weight written into each slot's scales
    rank: int = 0
    active: tuple[str, ...] | None = None


def slot(i: int) -> str:
    return f"slot{i}"


def parse(pipe: Any, name: str, state: dict) -> Parsed:
    """Convert a LoRA file's tensors to diffusers' layout; load its text-encoder part by ``name``."""
    from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

    unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
    # unet_config: SDXL's SGM block names mapped to diffusers' ones, as its own loader does.
    converted = type(pipe).lora_state_dict(dict(state), unet_config=unet.config)
    sd, alphas = converted[0], converted[1]
    unet_part = {k: v for k, v in sd.items() if k.startswith("unet.")}
    keys = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in unet_part.items()})
    modules = frozenset(key.partition(".lora_")[0] for key in keys)
    for path in modules:  # checked here, so that a LoRA for another model never costs a built slot
        try:
            unet.get_submodule(path)
        except AttributeError:
            raise InvalidRequest(f"LoRA {name!r} names {path!r}, which is not a layer of this model",
                                 field="loras") from None
    rank = max((min(v.shape[:2]) for v in unet_part.values() if v.ndim >= 2), default=0)
    loaded: list[str] = []
    try:
        for attr in TEXT_ENCODERS:
            te = getattr(pipe, attr, None)
            if te is None or not any(k.startswith(f"{attr}.") for k in sd):
                continue
            type(pipe).load_lora_into_text_encoder(sd, network_alphas=alphas, text_encoder=te, prefix=attr,
                                                   adapter_name=name, _pipeline=None)
            if name in (getattr(te, "peft_config", None) or {}):
                loaded.append(attr)
    except Exception:  # a LoRA that fails to load leaves no adapter behind
        forget(pipe, name, Parsed({}, None, 0, TEXT_ENCODERS))
        raise
    if not rank and not loaded:
        raise InvalidRequest(f"none of the tensors of LoRA {name!r} names one of this model's layers", field="loras")
    return Parsed(unet_part, alphas, rank, tuple(loaded), modules)


def forget(pipe: Any, name: str, parsed: Parsed) -> None:
    """A LoRA leaving the cache: its text-encoder adapters go (a slot holding it keeps it until reused)."""
    from diffusers.utils.peft_utils import delete_adapter_layers

    for attr in parsed.text_encoders:
        te = getattr(pipe, attr, None)
        if te is not None and name in (getattr(te, "peft_config", None) or {}):
            delete_adapter_layers(te, name)


def activate(pipe: Any, slots: Slots, wanted: list[tuple[str, Parsed, float]]) -> None:
    """Exactly ``wanted`` (name, parsed, weight) active on the UNet's slots and the text encoders."""
    from diffusers.loaders.lora_base import (disable_lora_for_text_encoder, enable_lora_for_text_encoder,
                                             set_adapters_for_text_encoder)

    # 1. The UNet (first: a LoRA that cannot be placed fails before anything else changes). The
    #    first len(unet) slots hold this request's LoRAs, in any order.
    unet = [(name, p, w) for name, p, w in wanted if p.unet_rank]
    n = len(unet)
    names = {name for name, _, _ in unet}
    placed = {name: i for i, name in enumerate(slots.holds[:n]) if name in names}
    free = [i for i in range(n) if i not in placed.values()]
    for name, parsed, _ in unet:
        if name not in placed:
            placed[name] = i = free.pop(0)
            _fill(slots, i, name, parsed)
    for name, _, weight in unet:
        i = placed[name]
        if slots.weights[i] != weight:
            for tensor, base in slots.scales[i]:
                tensor.fill_(base * weight)
            slots.weights[i] = weight
    _enable(slots, n > 0)
    active = tuple(slot(i) for i in range(n))
    if n and slots.active != active:
        _set_active(slots.unet, active)
        slots.active = active
    # 2. The text encoders (eager): named adapters, as everywhere else.
    for attr in TEXT_ENCODERS:
        te = getattr(pipe, attr, None)
        if te is None or not getattr(te, "peft_config", None):
            continue
        mine = [(name, w) for name, p, w in wanted if attr in p.text_encoders]
        if mine:
            enable_lora_for_text_encoder(te)
            set_adapters_for_text_encoder([name for name, _ in mine], te, [w for _, w in mine])
        else:
            disable_lora_for_text_encoder(te)


def deactivate(pipe: Any, slots: Slots) -> None:
    """No LoRA active anywhere: the UNet runs its plain layers (the graph compiled for 0 LoRAs)."""
    from diffusers.loaders.lora_base import disable_lora_for_text_encoder

    _enable(slots, False)
    for attr in TEXT_ENCODERS:
        te = getattr(pipe, attr, None)
        if te is not None and getattr(te, "peft_config", None):
            disable_lora_for_text_encoder(te)


def _fill(slots: Slots, i: int, name: str, parsed: Parsed) -> None:
    """Put one LoRA's UNet weights into slot ``i``: hotswapped in place, or the slot (re)built."""
    from peft.utils.hotswap import prepare_model_for_compiled_hotswap

    unet = slots.unet
    while len(slots.holds) <= i:
        slots.holds.append(None)
        slots.covers.append(frozenset())
        slots.scales.append([])
        slots.weights.append(None)
    exists = slot(i) in (getattr(unet, "peft_config", None) or {})
    if exists and parsed.unet_rank <= slots.rank and parsed.modules <= slots.covers[i]:
        try:
            unet.load_lora_adapter(parsed.state, prefix="unet", network_alphas=parsed.alphas, adapter_name=slot(i),
                                   hotswap=True)
            _record(slots, i, name)
            return
        except (RuntimeError, ValueError) as e:  # e.g. per-layer alphas the slot was not built with
            log.info("LoRA %s does not fit slot %d as built (%s); rebuilding the slot", name, i, e)
    slots.holds[i], slots.covers[i], slots.scales[i], slots.weights[i] = None, frozenset(), [], None
    slots.active = None  # the layers change: the active set is written again
    try:
        with warnings.catch_warnings():  # peft warns of several adapters and of deleting an active one: meant
            warnings.simplefilter("ignore", UserWarning)
            if exists:
                unet.delete_adapters(slot(i))
            unet.load_lora_adapter(parsed.state, prefix="unet", network_alphas=parsed.alphas, adapter_name=slot(i))
    except (RuntimeError, ValueError, KeyError) as e:  # the slot stays empty; the next LoRA builds it
        if slot(i) in (getattr(unet, "peft_config", None) or {}):
            unet.delete_adapters(slot(i))
        raise InvalidRequest(f"LoRA {name!r} does not fit this model: {e}", field="loras") from e
    slots.rank = max(slots.rank, parsed.unet_rank)
    # Every slot padded to one rank, scales as tensors: later hotswaps change no shape and no float.
    # (Padding swaps the other slots' layers for bigger ones holding the same values; their scale
    # tensors stay the very same objects.)
    prepare_model_for_compiled_hotswap(unet, target_rank=slots.rank, config=unet.peft_config[slot(i)],
                                       check_compiled="ignore")
    unet.requires_grad_(False)  # peft made the new layers trainable; the compiled graph guards on that flag
    slots.covers[i] = _layers_of(unet, slot(i))
    _record(slots, i, name)


def _record(slots: Slots, i: int, name: str) -> None:
    """Right after a load: slot ``i``'s scale tensors and the alpha/rank they hold (a weight of 1)."""
    from peft.tuners.lora import LoraLayer

    tensors = [m.scaling[slot(i)] for m in slots.unet.modules() if isinstance(m, LoraLayer) and slot(i) in m.scaling]
    slots.scales[i] = [(t, float(t)) for t in tensors]
    slots.holds[i], slots.weights[i] = name, None


def _layers_of(unet: Any, adapter: str) -> frozenset[str]:
    from peft.tuners.lora import LoraLayer

    return frozenset(name for name, m in unet.named_modules() if isinstance(m, LoraLayer) and adapter in m.lora_A)


def _enable(slots: Slots, enabled: bool) -> None:
    """Switch the UNet's adapter layers on or off, leaving every parameter frozen.

    (peft's enable_adapters marks the active adapters trainable again, and a compiled graph is
    guarded on requires_grad: a flip would recompile.)"""
    if not getattr(slots.unet, "peft_config", None):
        return
    if enabled:
        slots.unet.enable_lora()
        slots.unet.requires_grad_(False)
    else:
        slots.unet.disable_lora()


def _set_active(unet: Any, names: tuple[str, ...]) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in unet.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(list(names), inference_mode=True)
