"""OpenAI's table of the models TOML: which configured model serves each OpenAI model name.

Example::

    [openai.models]                         # OpenAI model name -> model id (each optional)
    "dall-e-3" = "sdxl"
    "gpt-image-1" = "sdxl"
    "dall-e-2" = "sd15"
    "my-house-style" = "sd15"               # any further name clients may send

    [openai]
    variations = "karlo"                    # optional: the model behind variations of OpenAI names

Defaults: every OpenAI name (protocol.OPENAI_MODELS) -> the first SDXL model, or the first model
when there is none; variations -> the first unCLIP model, else the name's own model. A configured
model's own id is always accepted as ``model`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelserve.core.model_config import ConfigError, ModelsConfig
from pixelserve.dialects.openai.protocol import OPENAI_MODELS
from pixelserve.errors import NotFound


@dataclass(frozen=True)
class OpenAIConfig:
    names: dict[str, str] = field(default_factory=dict)  # OpenAI model name -> model id
    model_ids: tuple[str, ...] = ()  # the configured models, accepted by their own id
    variations: str | None = None  # the model behind variations of an OpenAI name; None: the name's

    def model_for(self, name: str) -> str:
        """The model id serving ``name`` (an OpenAI name or a model id); NotFound names ``model``."""
        if name in self.model_ids:
            return name
        model_id = self.names.get(name)
        if model_id is None:
            raise NotFound(f"The model '{name}' does not exist on this server", field="model")
        return model_id

    def variation_model_for(self, name: str) -> str:
        if name in self.model_ids:
            return name
        model_id = self.model_for(name)
        return self.variations or model_id


def load(config: ModelsConfig) -> OpenAIConfig:
    """The ``[openai]`` table checked against the configured models; raises ConfigError."""
    first = config.first_of_family()
    default = first.get("sdxl") or next(iter(config.models))
    names = dict.fromkeys(OPENAI_MODELS, default)
    variations = first.get("unclip")
    raw = {} if config.demo else (config.dialect_tables.get("openai") or {})
    if not isinstance(raw, dict):
        raise ConfigError("openai must be a table")
    unknown = set(raw) - {"models", "variations"}
    if unknown:
        raise ConfigError(f"openai: unknown keys {sorted(unknown)} (models, variations)")
    table = raw.get("models") or {}
    if not isinstance(table, dict):
        raise ConfigError("openai.models must be a table of OpenAI model name -> model id")
    for name, mid in table.items():
        if mid not in config.models:
            raise ConfigError(f"openai.models.{name} names unknown model {mid!r}")
        names[name] = mid
    if "variations" in raw:
        if raw["variations"] not in config.models:
            raise ConfigError(f"openai.variations names unknown model {raw['variations']!r}")
        variations = raw["variations"]
    return OpenAIConfig(names=names, model_ids=tuple(config.models), variations=variations)
