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

Every other top-level table is a dialect's model mapping, named after the dialect: it is handed
on raw in ``ModelsConfig.dialect_tables`` and parsed by ``dialects/<name>/config.py`` (whose
docstring shows it) when the app is created, so a bad one still fails at start.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ModelsConfig:
    models: dict[str, ModelSpec]
    #: Every other top-level table of the TOML, raw, by name: each dialect's ``config.py`` parses its own.
    dialect_tables: dict[str, dict] = field(default_factory=dict)
    #: The TOML file's folder: relative paths in the dialect tables are relative to it.
    base_dir: Path = Path(".")
    #: The tiny demo models (no configuration given): each dialect maps its names onto them itself.
    demo: bool = False

    def first_of_family(self) -> dict[str, str]:
        """family -> the id of the first configured model of that family."""
        first: dict[str, str] = {}
        for m in self.models.values():
            first.setdefault(m.family, m.id)
        return first


#: The demo's tiny models and adapters are built by engine/demo/ on first load; their folders are
#: named here (torch-free) so the demo configuration can point at them before they exist.
TINY_VERSION = "2"  # 2: the real CLIP BPE vocabulary
TINY_ADAPTERS_VERSION = "2"
IP_ADAPTER_FILE = "ip-adapter.safetensors"
IMAGE_ENCODER_FOLDER = "image_encoder"


def tiny_model_folder(directory: Path, name: str) -> Path:
    """The folder of tiny model ``name`` (a family, or ``sdxl-refiner``) under ``directory``."""
    return Path(directory) / f"tiny-{name}-v{TINY_VERSION}"


def tiny_ip_adapter_folder(directory: Path, family: str) -> Path:
    return Path(directory) / f"tiny-{family}-ip-adapter-v{TINY_ADAPTERS_VERSION}"


def demo_config(cache_dir: Path | None = None) -> ModelsConfig:
    """The tiny random-weight models served when no configuration is given. With ``cache_dir`` (a
    server's), tiny-sdxl has a tiny refiner and tiny-sd / tiny-sdxl a tiny IP-Adapter, as the vendors'
    samples expect (OctoAI's ``use_refiner``, ``transfer_images``); the engine builds them under
    ``<cache_dir>/tiny`` when it first loads the model."""
    extras: dict[str, dict] = {"sd": {}, "sdxl": {}}
    if cache_dir is not None:
        tiny = Path(cache_dir) / "tiny"
        for family, parts in extras.items():
            folder = tiny_ip_adapter_folder(tiny, family)
            parts.update(ip_adapter=folder / IP_ADAPTER_FILE, image_encoder=folder / IMAGE_ENCODER_FOLDER)
        extras["sdxl"]["refiner"] = tiny_model_folder(tiny, "sdxl-refiner")
    models = {"tiny-sd": ModelSpec("tiny-sd", "sd", None, **extras["sd"]),
              "tiny-sdxl": ModelSpec("tiny-sdxl", "sdxl", None, **extras["sdxl"]),
              "tiny-unclip": ModelSpec("tiny-unclip", "unclip", None)}
    return ModelsConfig(models=models, demo=True)


def config_path(base: Path, value: object, where: str) -> Path:
    """A path of the TOML (relative ones to ``base``), resolved; it must exist."""
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
            return config_path(base, entry[key], f"{where}.{key}") if key in entry else None

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
            id=mid, family=family, path=config_path(base, entry.get("path"), f"{where}.path"),
            refiner=refiner, config=optional("config"), refiner_config=refiner_config,
            ip_adapter=ip_adapter, image_encoder=image_encoder,
        )
    if not models:
        raise ConfigError(f"{file} configures no [models.<id>] table")
    tables = {name: table for name, table in raw.items() if name != "models"}
    return ModelsConfig(models=models, dialect_tables=tables, base_dir=base)
