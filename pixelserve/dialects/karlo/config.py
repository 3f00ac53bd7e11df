"""Karlo's table of the models TOML: which configured model serves each Karlo version.

Example::

    [karlo]                                 # Karlo version -> model id
    "v2.1" = "sdxl"
    "v2.0" = "sd15"
    inpainting = "sd15"                     # optional; default: the v2.0 model
    variations = "karlo-unclip"             # optional; default: the version's model (img2img)

A version not named is answered "not configured on this server". The demo models serve v2.1
with the SDXL one and v2.0 with the SD one, and variations with the unCLIP one (Karlo is an
unCLIP model: its variations decode the input's image embedding). A variation that asks for
``face_refiner`` is drawn by the version's model instead: the unCLIP family cannot repaint faces
(no img2img).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelserve.core.model_config import ConfigError, ModelsConfig
from pixelserve.dialects.karlo.protocol import SIZE_LIMITS
from pixelserve.errors import NotSupported

KEYS = (*SIZE_LIMITS, "inpainting", "variations")


@dataclass(frozen=True)
class KarloConfig:
    models: dict[str, str] = field(default_factory=dict)  # version (or "inpainting") -> model id

    def model_for(self, version: str) -> str:
        model_id = self.models.get(version)
        if model_id is None:
            raise NotSupported(f"Karlo {version} is not configured on this server")
        return model_id

    def inpainting_model(self, version: str) -> str:
        return self.models.get("inpainting") or self.model_for(version)

    def variations_model(self, version: str, repaint_faces: bool = False) -> str:
        self.model_for(version)  # the version must be served, whichever model draws the variation
        if repaint_faces or "variations" not in self.models:
            return self.model_for(version)
        return self.models["variations"]


def load(config: ModelsConfig) -> KarloConfig:
    """The ``[karlo]`` table checked against the configured models; raises ConfigError."""
    if config.demo:
        first = config.first_of_family()
        return KarloConfig({"v2.1": first["sdxl"], "v2.0": first["sd"], "variations": first["unclip"]})
    table = config.dialect_tables.get("karlo") or {}
    if not isinstance(table, dict):
        raise ConfigError("karlo must be a table")
    for version, mid in table.items():
        if version not in KEYS:
            raise ConfigError(f"karlo: unknown key {version!r} (v2.0, v2.1, inpainting or variations)")
        if mid not in config.models:
            raise ConfigError(f"karlo.{version} names unknown model {mid!r}")
    return KarloConfig(dict(table))
