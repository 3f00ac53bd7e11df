"""``GET|POST /sdapi/v1/options``: A1111's settings, each API key's own.

In A1111 ``sd_model_checkpoint`` is global: one client's switch changes every other client's jobs.
Here it is the caller's default checkpoint, stored per key (service/key_options.py), and so are the
other settable options. The generation routes read them through ``app.state.a1111_defaults``
(``model_for(caller)``, ``options_for(caller)``).

Settable: ``sd_model_checkpoint`` (any name ``checkpoints.resolve`` takes), ``CLIP_stop_at_last_layers``
(1-12), ``samples_format`` (png, jpg, jpeg, webp), ``sd_vae`` (``Automatic`` / ``None``: pixelserve
serves each checkpoint with its own VAE). The other listed options describe this server and can only be
"set" to the value they have; an option A1111 has that is not listed is a 400 naming it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pixelserve.dialects.a1111.checkpoints import CheckpointTable
from pixelserve.errors import InvalidRequest
from pixelserve.service.auth import Caller
from pixelserve.service.key_options import KeyOptionsService

NAMESPACE = "a1111"
SAMPLES_FORMATS = ("png", "jpg", "jpeg", "webp")
VAES = ("Automatic", "None")
#: Settable options and their defaults (A1111's shared_options defaults).
SETTABLE: dict[str, Any] = {"CLIP_stop_at_last_layers": 1, "samples_format": "png", "sd_vae": "Automatic"}


def _clip_skip(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or not 1 <= value <= 12:
        raise InvalidRequest("must be an integer from 1 to 12", field="CLIP_stop_at_last_layers")
    return int(value)


def _choice(name: str, choices: tuple[str, ...]):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise InvalidRequest(f"must be one of {', '.join(choices)}", field=name)
        return value
    return check


CHECKS = {"CLIP_stop_at_last_layers": _clip_skip, "samples_format": _choice("samples_format", SAMPLES_FORMATS),
          "sd_vae": _choice("sd_vae", VAES)}


class A1111Defaults:
    """Each key's A1111 options. Built at app creation (so the generation routes always find it on
    ``app.state``); the database is opened later, in the lifespan, and read from ``state`` on use.
    Its methods read the database (cached): call them off the event loop."""

    def __init__(self, state: Any, checkpoints: CheckpointTable):
        self._state = state
        self.checkpoints = checkpoints
        self._service: KeyOptionsService | None = None

    @property
    def service(self) -> KeyOptionsService:
        if self._service is None:
            self._service = KeyOptionsService(self._state.sessions, NAMESPACE)
        return self._service

    def default_model(self) -> str | None:
        """The checkpoint of a caller that chose none: the first configured sd/sdxl model."""
        first = self.checkpoints.list_ids()
        return first[0] if first else None

    def model_for(self, caller: Caller | None) -> str | None:
        """The model id the caller's A1111 jobs use when they name none; None: no sd/sdxl model served."""
        chosen = self.service.get(_id(caller)).get("sd_model_checkpoint")
        if chosen in self.checkpoints:
            return chosen
        return self.default_model()  # never chosen, or no longer configured

    def options_for(self, caller: Caller | None) -> dict[str, Any]:
        """The caller's settable options (SETTABLE's keys, its own values or the defaults)."""
        stored = self.service.get(_id(caller))
        return {name: stored.get(name, default) for name, default in SETTABLE.items()}

    async def amodel_for(self, caller: Caller | None) -> str | None:
        """``model_for`` off the event loop (for async routes)."""
        return await asyncio.to_thread(self.model_for, caller)

    async def aoptions_for(self, caller: Caller | None) -> dict[str, Any]:
        return await asyncio.to_thread(self.options_for, caller)

    def wire(self, caller: Caller | None, preview_every: int) -> dict[str, Any]:
        """``GET /options``: the caller's options and the ones describing this server."""
        model = self.model_for(caller)
        checkpoint = self.checkpoints.get(model) if model is not None else None
        return {
            "sd_model_checkpoint": checkpoint.title if checkpoint else None,
            "sd_checkpoint_hash": checkpoint.sha256 if checkpoint else None,
            **self.options_for(caller),
            **fixed_options(preview_every),
        }

    def update(self, caller: Caller | None, values: dict[str, Any], preview_every: int) -> None:
        """``POST /options``: every value checked first; nothing is stored if one is refused."""
        fixed = fixed_options(preview_every)
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name == "sd_model_checkpoint":
                if value is None:
                    raise InvalidRequest("must be a checkpoint title (see /sdapi/v1/sd-models)", field=name)
                changes[name] = self.checkpoints.resolve(str(value), field=name)
            elif name == "sd_checkpoint_hash":
                continue  # follows sd_model_checkpoint (webuiapi sends back what GET /options gave)
            elif name in CHECKS:
                changes[name] = CHECKS[name](value)
            elif name in fixed:
                if value != fixed[name]:
                    raise InvalidRequest(f"is {fixed[name]!r} on this server and cannot be changed", field=name)
            else:
                raise InvalidRequest("is not an option pixelserve supports (see GET /sdapi/v1/options)", field=name)
        if changes:
            self.service.update(_id(caller), changes)


def fixed_options(preview_every: int) -> dict[str, Any]:
    """Options A1111 clients read that describe this server; not settable."""
    return {
        "live_previews_enable": preview_every > 0,
        "show_progress_every_n_steps": preview_every if preview_every > 0 else -1,
        "live_previews_image_format": "jpeg",
        "return_grid": False,
        "enable_pnginfo": True,
        "face_restoration": False,
        "tiling": False,
        "api_enable_requests": True,
        "api_forbid_local_requests": True,
    }


def _id(caller: Caller | None) -> int | None:
    return caller.id if caller is not None else None
