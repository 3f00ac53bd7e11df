"""Model configuration: which local weights serve which model id (a TOML file).

Example::

    [models.sdxl]
    family = "sdxl"                         # sd | sdxl | unclip
    path = "/models/sdxl-base"              # a diffusers folder or one .safetensors file
    refiner = "/models/sdxl-refiner"        # optional (sdxl only)
    # refiner_config = "/models/refiner-cfg" # a diffusers folder; needed when refiner is one file

    [models.sd15]
    family = "sd"
    path = "/models/v1-5-pruned-emaonly.safetensors"
    ip_adapter = "/models/ip-adapter_sd15.safetensors"  # optional (sd, sdxl): image prompts
    image_encoder = "/models/ip-adapter-image-encoder"  # its CLIPVisionModelWithProjection folder

    [models.karlo]
    family = "unclip"                       # a diffusers folder only (see engine/families/unclip.py)
    path = "/models/karlo-v1-alpha"         # UnCLIPPipeline + image_encoder/ + feature_extractor/

    [karlo]                                 # Karlo version -> model id
    "v2.1" = "sdxl"
    "v2.0" = "sd15"
    inpainting = "sd15"                     # optional; default: the v2.0 model

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
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = ("sd", "sdxl", "unclip")
TASKS = {
    "sd": ("txt2img", "img2img", "inpaint"), "sdxl": ("txt2img", "img2img", "inpaint"),
    "unclip": ("txt2img", "variation"),
}
#: Samplers a family can run (core.samplers names); a family not listed runs them all.
#: unCLIP's decoder runs its own UnCLIPScheduler (scheduler None), DDIM or DDPM only.
FAMILY_SCHEDULERS = {"unclip": ("ddim", "ddpm")}
#: Families whose weights can come as one A1111/ComfyUI .safetensors file.
SINGLE_FILE_FAMILIES = ("sd", "sdxl")


class ConfigError(ValueError):
    """A model configuration that cannot be served; raised at start, never per request."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    path: Path | None  # None: the tiny demo model of this family, built on first use
    refiner: Path | None = None
    #: A diffusers folder whose component configs describe a single-file checkpoint's
    #: architecture; None uses the configs shipped with pixelserve for the family.
    config: Path | None = None
    #: The same for a single-file refiner (pixelserve ships no refiner configs).
    refiner_config: Path | None = None
    #: An IP-Adapter (one safetensors file) and the CLIP image encoder folder it was trained
    #: with: image prompts (OctoAI transfer_images). Both or neither; sd and sdxl only.
    ip_adapter: Path | None = None
    image_encoder: Path | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASKS[self.family]

    @property
    def is_demo(self) -> bool:
        return self.path is None


#: OctoAI engine id -> the model family it serves (dialects/octoai).
OCTOAI_ENGINES = {"sdxl": "sdxl", "sd": "sd", "controlnet-sdxl": "sdxl", "controlnet-sd15": "sd"}
#: Asset names (OctoAI asset library): never a path, no '/' or ':' (owner/name and octoai:name refer to them).
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: ControlNet preprocessors a configured ControlNet may name (engine side: the control map maker).
PREPROCESSORS = ("canny",)


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


@dataclass(frozen=True)
class ModelsConfig:
    models: dict[str, ModelSpec]
    karlo: dict[str, str] = field(default_factory=dict)
    octoai: OctoAIConfig = field(default_factory=OctoAIConfig)


def demo_config() -> ModelsConfig:
    """The tiny random-weight models served when no configuration is given."""
    models = {"tiny-sd": ModelSpec("tiny-sd", "sd", None), "tiny-sdxl": ModelSpec("tiny-sdxl", "sdxl", None),
              "tiny-unclip": ModelSpec("tiny-unclip", "unclip", None)}
    controlnets = {name: ControlNetSpec(name, family, None, "canny")
                   for name, family in (("canny_sdxl", "sdxl"), ("canny_sd15", "sd"))}
    octoai = OctoAIConfig(engines=_default_engines(models), controlnets=controlnets,
                          checkpoints={"RealVisXL": "tiny-sdxl"})
    return ModelsConfig(models=models, karlo={"v2.1": "tiny-sdxl", "v2.0": "tiny-sd"}, octoai=octoai)


def _default_engines(models: dict[str, ModelSpec]) -> dict[str, str]:
    """Each OctoAI engine served by the first configured model of its family."""
    first: dict[str, str] = {}
    for m in models.values():
        first.setdefault(m.family, m.id)
    return {engine: first[family] for engine, family in OCTOAI_ENGINES.items() if family in first}


def _path(base: Path, value: object, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty path string")
    p = Path(value).expanduser()
    p = p if p.is_absolute() else (base / p)
    p = p.resolve()
    if not p.exists():
        raise ConfigError(f"{where}: {p} does not exist")
    return p


def load_models_config(file: Path) -> ModelsConfig:
    file = Path(file)
    try:
        raw = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read model config {file}: {e}") from e
    base = file.parent
    models: dict[str, ModelSpec] = {}
    for mid, entry in (raw.get("models") or {}).items():
        where = f"models.{mid}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(entry) - {"family", "path", "refiner", "config", "refiner_config", "ip_adapter", "image_encoder"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        family = entry.get("family")
        if family not in FAMILIES:
            raise ConfigError(f"{where}.family must be one of {FAMILIES}, got {family!r}")
        if "refiner" in entry and family != "sdxl":
            raise ConfigError(f"{where}.refiner is only for the sdxl family")
        def optional(key: str) -> Path | None:
            return _path(base, entry[key], f"{where}.{key}") if key in entry else None

        refiner, refiner_config = optional("refiner"), optional("refiner_config")
        if refiner is not None and refiner.is_file() and refiner_config is None:
            raise ConfigError(f"{where}.refiner is a single file: also set refiner_config to a diffusers "
                              "folder with the refiner's component configs (or use a diffusers folder)")
        ip_adapter, image_encoder = optional("ip_adapter"), optional("image_encoder")
        if (ip_adapter is None) != (image_encoder is None):
            raise ConfigError(f"{where}: ip_adapter and image_encoder go together (the adapter and the image "
                              "encoder it was trained with)")
        if ip_adapter is not None:
            if family not in SINGLE_FILE_FAMILIES:
                raise ConfigError(f"{where}.ip_adapter is only for the sd and sdxl families")
            if not ip_adapter.is_file() or ip_adapter.suffix != ".safetensors":
                raise ConfigError(f"{where}.ip_adapter must be one .safetensors file")
            if not (image_encoder / "config.json").is_file():
                raise ConfigError(f"{where}.image_encoder must be a folder with config.json and safetensors weights")
        models[mid] = ModelSpec(
            id=mid, family=family, path=_path(base, entry.get("path"), f"{where}.path"),
            refiner=refiner, config=optional("config"), refiner_config=refiner_config,
            ip_adapter=ip_adapter, image_encoder=image_encoder,
        )
    if not models:
        raise ConfigError(f"{file} configures no [models.<id>] table")
    karlo = dict(raw.get("karlo") or {})
    for version, mid in karlo.items():
        if version not in ("v2.0", "v2.1", "inpainting"):
            raise ConfigError(f"karlo: unknown key {version!r} (v2.0, v2.1 or inpainting)")
        if mid not in models:
            raise ConfigError(f"karlo.{version} names unknown model {mid!r}")
    return ModelsConfig(models=models, karlo=karlo, octoai=_octoai(raw.get("octoai") or {}, models, base))


def _octoai(raw: dict, models: dict[str, ModelSpec], base: Path) -> OctoAIConfig:
    unknown = set(raw) - {"engines", "controlnets", "checkpoints"}
    if unknown:
        raise ConfigError(f"octoai: unknown keys {sorted(unknown)} (engines, controlnets, checkpoints)")

    def model_of(mid: object, where: str, family: str) -> str:
        if mid not in models:
            raise ConfigError(f"{where} names unknown model {mid!r}")
        if models[mid].family != family:
            raise ConfigError(f"{where}: model {mid!r} is {models[mid].family}, the engine needs {family}")
        return mid

    engines = _default_engines(models)
    for engine, mid in (raw.get("engines") or {}).items():
        if engine not in OCTOAI_ENGINES:
            raise ConfigError(f"octoai.engines: unknown engine {engine!r} (one of {', '.join(OCTOAI_ENGINES)})")
        engines[engine] = model_of(mid, f"octoai.engines.{engine}", OCTOAI_ENGINES[engine])
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
        controlnets[name] = ControlNetSpec(name, entry["family"], _path(base, entry.get("path"), f"{where}.path"),
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
