"""OctoAI's tables of the models TOML: engines, public ControlNets and public checkpoints.

Example::

    [octoai.engines]                        # OctoAI engine id -> model id (each optional; default:
    sdxl = "sdxl"                           # the first model of the engine's family; the
    sd = "sd15"                             # controlnet-* engines default to sdxl / sd)
    "controlnet-sdxl" = "sdxl"

    [octoai.controlnets.canny_sdxl]         # the public asset octoai:canny_sdxl
    family = "sdxl"
    path = "/models/controlnet-canny-sdxl"  # a diffusers ControlNet folder or one .safetensors file
    preprocess = "canny"                    # control map made from controlnet_image (omit: used as sent)

    [octoai.checkpoints]                    # public checkpoints -> model ids (default: RealVisXL = the
    RealVisXL = "sdxl"                      # sdxl engine's model)

The demo models also get the tiny demo ControlNets ``canny_sdxl`` and ``canny_sd15``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pixelserve.core.model_config import ConfigError, ModelsConfig, config_path
from pixelserve.core.request import PREPROCESSORS
from pixelserve.dialects.octoai.protocol import ENGINE_FAMILIES, ENGINES
from pixelserve.errors import NotFound
from pixelserve.service.asset_refs import ASSET_NAME, ConfiguredAsset


@dataclass(frozen=True)
class ControlNetSpec:
    """A public ControlNet asset (``octoai:<name>``) of one family."""

    name: str
    family: str
    path: Path | None  # None: the tiny demo ControlNet of the family, built on first use
    preprocess: str | None = None  # what controlnet_preprocess makes of controlnet_image


@dataclass(frozen=True)
class OctoAIConfig:
    engines: dict[str, str] = field(default_factory=dict)  # engine id -> model id
    controlnets: dict[str, ControlNetSpec] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)  # public checkpoint name -> model id

    def engine_model(self, engine_id: str) -> str:
        """The model id serving an engine; NotFound for an unknown or unconfigured engine."""
        if engine_id not in ENGINES:
            raise NotFound(f"unknown engine {engine_id!r}; one of {', '.join(ENGINES)}")
        model_id = self.engines.get(engine_id)
        if model_id is None:
            raise NotFound(f"engine {engine_id} is not configured on this server")
        return model_id

    def public_assets(self, models: ModelsConfig) -> list[ConfiguredAsset]:
        """The configured ControlNets and checkpoints, for the asset library (service/assets.py)."""
        out = [ConfiguredAsset(name, "controlnet", cn.family, cn.path, preprocess=cn.preprocess,
                               description=f"ControlNet configured on this server ({cn.preprocess or 'no'} "
                                           "preprocessing)" if cn.path else
                                           f"tiny random-weight demo ControlNet ({cn.preprocess})")
               for name, cn in self.controlnets.items()]
        out += [ConfiguredAsset(name, "checkpoint", models.models[mid].family, None, model_id=mid,
                                description=f"the configured model {mid}")
                for name, mid in self.checkpoints.items()]
        return out

    def family_models(self) -> dict[str, str]:
        """family -> the model an uploaded asset of that family is checked against: the engine's."""
        return {family: self.engines[family] for family in ("sdxl", "sd") if family in self.engines}


def load(config: ModelsConfig) -> OctoAIConfig:
    """The ``[octoai]`` tables checked against the configured models; raises ConfigError."""
    if config.demo:
        controlnets = {name: ControlNetSpec(name, family, None, "canny")
                       for name, family in (("canny_sdxl", "sdxl"), ("canny_sd15", "sd"))}
        return OctoAIConfig(engines=_default_engines(config), controlnets=controlnets,
                            checkpoints={"RealVisXL": config.first_of_family()["sdxl"]})
    raw = config.dialect_tables.get("octoai") or {}
    if not isinstance(raw, dict):
        raise ConfigError("octoai must be a table")
    models, base = config.models, config.base_dir
    unknown = set(raw) - {"engines", "controlnets", "checkpoints"}
    if unknown:
        raise ConfigError(f"octoai: unknown keys {sorted(unknown)} (engines, controlnets, checkpoints)")

    def model_of(mid: object, where: str, family: str) -> str:
        if mid not in models:
            raise ConfigError(f"{where} names unknown model {mid!r}")
        if models[mid].family != family:
            raise ConfigError(f"{where}: model {mid!r} is {models[mid].family}, the engine needs {family}")
        return mid

    engines = _default_engines(config)
    for engine, mid in (raw.get("engines") or {}).items():
        if engine not in ENGINE_FAMILIES:
            raise ConfigError(f"octoai.engines: unknown engine {engine!r} (one of {', '.join(ENGINE_FAMILIES)})")
        engines[engine] = model_of(mid, f"octoai.engines.{engine}", ENGINE_FAMILIES[engine])
    if "engines" in raw:  # a controlnet engine follows its family's engine unless named itself
        for cn, plain in (("controlnet-sdxl", "sdxl"), ("controlnet-sd15", "sd")):
            if cn not in raw["engines"] and plain in engines:
                engines[cn] = engines[plain]
    controlnets = {}
    for name, entry in (raw.get("controlnets") or {}).items():
        where = f"octoai.controlnets.{name}"
        if not isinstance(entry, dict) or set(entry) - {"family", "path", "preprocess"}:
            raise ConfigError(f"{where} must be a table of family, path and optional preprocess")
        if entry.get("family") not in ("sd", "sdxl"):
            raise ConfigError(f"{where}.family must be sd or sdxl")
        if entry.get("preprocess") not in (None, *PREPROCESSORS):
            raise ConfigError(f"{where}.preprocess must be one of {PREPROCESSORS}")
        controlnets[name] = ControlNetSpec(name, entry["family"], config_path(base, entry.get("path"), f"{where}.path"),
                                           entry.get("preprocess"))
    if "checkpoints" in raw:
        checkpoints = {}
        for name, mid in raw["checkpoints"].items():
            family = models[mid].family if mid in models else "sd"
            checkpoints[name] = model_of(mid, f"octoai.checkpoints.{name}", family if family != "unclip" else "sd")
    else:
        checkpoints = {"RealVisXL": engines["sdxl"]} if "sdxl" in engines else {}
    for name in [*controlnets, *checkpoints]:
        if not ASSET_NAME.fullmatch(name):
            raise ConfigError(f"octoai: asset name {name!r} must match {ASSET_NAME.pattern}")
    if set(controlnets) & set(checkpoints):
        raise ConfigError(f"octoai: {sorted(set(controlnets) & set(checkpoints))} named twice")
    return OctoAIConfig(engines=engines, controlnets=controlnets, checkpoints=checkpoints)


def _default_engines(config: ModelsConfig) -> dict[str, str]:
    """Each engine served by the first configured model of its family."""
    first = config.first_of_family()
    return {engine: first[family] for engine, family in ENGINE_FAMILIES.items() if family in first}
