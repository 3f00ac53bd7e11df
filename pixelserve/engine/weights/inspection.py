"""Is an uploaded weights file what it claims to be, for the model family it claims?

Reads only the safetensors header (tensor names and shapes; no tensor data, nothing unpickled):
the format is detected by content (``formats.detect_format``: the 8-byte header length is
bounded before anything maps the file), ``safe_open`` validates the header, then the names must
have the layout of the asset's kind, and the widths the family's model was built with:

- lora: every tensor a LoRA part (``lora_down``/``lora_up``/``alpha``, ``lora_A``/``lora_B``...);
  the ``attn2`` key/value projections read text embeddings as wide as the model's
  ``cross_attention_dim`` (768 SD 1.5, 2048 SDXL); text-encoder parts fit the text encoders.
- textual_inversion: SD one embedding (``emb_params`` or a single tensor) as wide as the text
  encoder; SDXL ``clip_l`` and ``clip_g`` for its two encoders.
- vae: an AutoencoderKL (``encoder.*``, ``decoder.*``, ``quant_conv``), as many latent channels.
- checkpoint: an original-layout single file (``model.diffusion_model.*`` and the family's text
  encoders: ``cond_stage_model.*`` SD, ``conditioner.embedders.*`` SDXL).
- controlnet: a ControlNet (``controlnet_cond_embedding.*`` diffusers, ``input_hint_block.*``
  original) whose cross-attention matches the model's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.weights.formats import WeightsFormatError, detect_format

MAX_TENSORS = 100_000
MAX_TI_VECTORS = 75  # a 77-token window holds at most 75 of them

_LORA_PART = re.compile(r"(\.(lora_(down|up|mid|A|B)|lora\.(down|up)|lora_linear_layer\.(down|up))\.weight"
                        r"|\.alpha|\.dora_scale|\.lora_magnitude_vector)$")
_LORA_DOWN = re.compile(r"\.(lora_down|lora_A|lora\.down|lora_linear_layer\.down)\.weight$")
_CROSS_KV = re.compile(r"attn2[._](to_[kv])")
_TE2 = re.compile(r"^(lora_te2_|text_encoder_2\.|te2\.)")
_TE1 = re.compile(r"^(lora_te1?_|text_encoder\.|te1?\.)")
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


class AssetRejected(ValueError):
    """The file is not an asset of the declared kind for the declared family (the reason says why)."""


@dataclass(frozen=True)
class ModelDims:
    cross_attention_dim: int
    text_widths: tuple[int, ...]  # hidden size of each text encoder (SD one, SDXL two)
    latent_channels: int = 4


def model_dims(spec: ModelSpec, cache_dir: Path) -> ModelDims:
    """The widths of the model ``spec`` from its component configs (the tiny model's for a demo)."""
    if spec.path is None:
        from pixelserve.engine.demo import tiny

        folder = tiny.ensure_tiny_model(spec.family, Path(cache_dir) / "tiny")
    elif spec.path.is_dir():
        folder = spec.path
    else:
        from pixelserve.engine.weights.single_file import shipped_config

        folder = spec.config or shipped_config(spec.family)

    def config(component: str) -> dict:
        return json.loads((folder / component / "config.json").read_text())

    cross = config("unet")["cross_attention_dim"]
    encoders = ("text_encoder", "text_encoder_2") if spec.family == "sdxl" else ("text_encoder",)
    return ModelDims(cross_attention_dim=int(cross if isinstance(cross, int) else max(cross)),
                     text_widths=tuple(int(config(e)["hidden_size"]) for e in encoders),
                     latent_channels=int(config("vae").get("latent_channels", 4)))


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the file's safetensors header; AssetRejected for anything else."""
    from safetensors import SafetensorError, safe_open

    try:
        detect_format(path)
        if not path.is_file():
            raise WeightsFormatError(f"{path.name} is not a file")
        with safe_open(str(path), framework="np") as f:
            names = list(f.keys())
            if len(names) > MAX_TENSORS:
                raise AssetRejected(f"{len(names)} tensors is more than any image model asset has")
            return {name: tuple(f.get_slice(name).get_shape()) for name in names}
    except WeightsFormatError:
        raise AssetRejected("not a safetensors file (only safetensors weights are accepted; pickle never is)") \
            from None
    except SafetensorError as e:
        raise AssetRejected(f"not a valid safetensors file: {e}") from None


def check_file(path: Path, kind: str, family: str, dims: ModelDims) -> dict:
    """Raises AssetRejected unless ``path`` is a ``kind`` asset for ``family``; returns a summary."""
    shapes = read_shapes(Path(path))
    if not shapes:
        raise AssetRejected("the file holds no tensors")
    {"lora": _lora, "textual_inversion": _textual_inversion, "vae": _vae, "checkpoint": _checkpoint,
     "controlnet": _controlnet}[kind](shapes, family, dims)
    return {"tensors": len(shapes)}


def _other_family(family: str) -> str:
    return "SD 1.x/2.x" if family == "sdxl" else "SDXL"


def _cross_attention(width: int, dims: ModelDims, family: str, what: str) -> None:
    if width != dims.cross_attention_dim:
        raise AssetRejected(f"{what} takes {width}-wide text embeddings, but this engine's {family} model has "
                            f"{dims.cross_attention_dim} (made for another model family)")


def _lora(shapes: dict, family: str, dims: ModelDims) -> None:
    for name in shapes:
        if not _LORA_PART.search(name):
            raise AssetRejected(f"tensor {name!r} is not part of a LoRA (lora_down/lora_up/alpha or lora_A/lora_B)")
    if family == "sd" and any(_TE2.match(n) for n in shapes):
        raise AssetRejected("it adapts a second text encoder: an SDXL LoRA, not one for SD 1.x/2.x")
    if family == "sdxl" and any(n.startswith("lora_te_") for n in shapes):
        raise AssetRejected("it adapts a single text encoder (lora_te_): an SD 1.x/2.x LoRA, not one for SDXL")
    for name, shape in shapes.items():
        if not _LORA_DOWN.search(name) or len(shape) < 2:
            continue
        if _CROSS_KV.search(name):  # only the UNet has cross-attention (CLIP layers: self_attn)
            _cross_attention(shape[1], dims, family, f"its {name.split('.')[0]} layer")
        elif _TE2.match(name) and len(dims.text_widths) > 1 and shape[1] != dims.text_widths[1]:
            raise AssetRejected(f"{name} is {shape[1]} wide, the second text encoder {dims.text_widths[1]}")
        elif _TE1.match(name) and shape[1] != dims.text_widths[0]:
            raise AssetRejected(f"{name} is {shape[1]} wide, the text encoder {dims.text_widths[0]}")


def _embedding(name: str, shape: tuple, width: int) -> None:
    vectors = shape[0] if len(shape) == 2 else 1
    if len(shape) not in (1, 2) or shape[-1] != width:
        raise AssetRejected(f"embedding {name!r} has shape {list(shape)}; the text encoder needs vectors of {width}")
    if not 1 <= vectors <= MAX_TI_VECTORS:
        raise AssetRejected(f"embedding {name!r} has {vectors} vectors (1 to {MAX_TI_VECTORS})")


def _textual_inversion(shapes: dict, family: str, dims: ModelDims) -> None:
    if family == "sdxl":
        if set(shapes) != {"clip_l", "clip_g"}:
            raise AssetRejected("an SDXL embedding holds exactly clip_l and clip_g (one per text encoder); "
                                f"this file holds {sorted(shapes)[:5]}")
        _embedding("clip_l", shapes["clip_l"], dims.text_widths[0])
        _embedding("clip_g", shapes["clip_g"], dims.text_widths[1])
        return
    if {"clip_l", "clip_g"} & set(shapes):
        raise AssetRejected("clip_l/clip_g embeddings are for SDXL, not SD 1.x/2.x")
    if len(shapes) != 1:
        raise AssetRejected(f"an SD embedding holds one tensor (emb_params); this file holds {len(shapes)}")
    (name, shape), = shapes.items()
    _embedding(name, shape, dims.text_widths[0])


def _vae(shapes: dict, family: str, dims: ModelDims) -> None:
    def bare(name: str) -> str:
        for prefix in _VAE_PREFIXES:
            if name.startswith(prefix):
                return name[len(prefix):]
        return name

    names = {bare(n): s for n, s in shapes.items()}
    odd = [n for n in names if not n.startswith(_VAE_PARTS)]
    if odd or not any(n.startswith("encoder.") for n in names) or not any(n.startswith("decoder.") for n in names):
        raise AssetRejected(f"not a VAE: expected encoder.*, decoder.* and quant_conv tensors"
                            + (f", found {odd[0]!r}" if odd else ""))
    conv_in = names.get("decoder.conv_in.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != dims.latent_channels:
        raise AssetRejected(f"its decoder reads {conv_in[1]} latent channels; the {family} model has "
                            f"{dims.latent_channels}")


def _checkpoint(shapes: dict, family: str, dims: ModelDims) -> None:
    if not any(n.startswith("model.diffusion_model.") for n in shapes):
        raise AssetRejected("not a single-file checkpoint: no model.diffusion_model.* (UNet) tensors")
    sdxl = any(n.startswith("conditioner.embedders.") for n in shapes)
    sd = any(n.startswith("cond_stage_model.") for n in shapes)
    if family == "sdxl" and not sdxl or family == "sd" and not sd:
        found = "SDXL" if sdxl else "SD 1.x/2.x" if sd else "no"
        raise AssetRejected(f"it has {found} text encoders; a {family} checkpoint needs "
                            + ("conditioner.embedders.*" if family == "sdxl" else "cond_stage_model.*"))
    _cross_attention_tensors(shapes, family, dims, "model.diffusion_model.")


def _controlnet(shapes: dict, family: str, dims: ModelDims) -> None:
    markers = ("controlnet_cond_embedding.", "input_hint_block.", "control_model.input_hint_block.")
    if not any(n.startswith(markers) for n in shapes):
        raise AssetRejected("not a ControlNet: no controlnet_cond_embedding.* or input_hint_block.* tensors")
    _cross_attention_tensors(shapes, family, dims, "")


def _cross_attention_tensors(shapes: dict, family: str, dims: ModelDims, prefix: str) -> None:
    for name, shape in shapes.items():
        if name.startswith(prefix) and name.endswith("attn2.to_k.weight") and len(shape) == 2:
            _cross_attention(shape[1], dims, family, "its cross-attention")
            return
