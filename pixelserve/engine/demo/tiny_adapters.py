"""Deterministic tiny random-weight adapters for the tiny models of ``engine/demo/tiny.py`` (tests, demo).

Each file is written in the layout such adapters have in the wild, so tests exercise the same
loading code real downloads go through:

- LoRA: one kohya-ss (sd-scripts / A1111) ``.safetensors``: ``lora_unet_*`` and ``lora_te_*``
  (SDXL: ``lora_te1_*`` / ``lora_te2_*``) modules, each with ``.lora_down.weight``,
  ``.lora_up.weight`` and ``.alpha``. SD 1.x keys use diffusers' UNet block names (as kohya
  trains SD 1.x), SDXL keys the original ``input_blocks`` / ``middle_block`` / ``output_blocks``
  names (kohya trains SDXL on that UNet). diffusers' ``load_lora_weights`` converts both.
- Textual inversion: SD 1.x an A1111 ``.safetensors`` with one ``emb_params`` tensor
  ``[vectors, hidden]``; SDXL one file with ``clip_l`` (text_encoder) and ``clip_g``
  (text_encoder_2), as SDXL embeddings ship.
- VAE: one ``.safetensors`` AutoencoderKL in the original (LDM) layout, without prefix, as
  standalone VAE files (``vae-ft-mse-840000-ema-pruned.safetensors``) ship.
- ControlNet: a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``) of a
  ``ControlNetModel`` shaped like the family's tiny UNet, 8x conditioning downsampling.

Weights are random but large (a LoRA delta of the order of the weights it patches, embeddings
far from the token table, non-zero ControlNet output convolutions): applying any of them visibly
changes a tiny model's image, which the tests rely on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import torch

from pixelserve.core.model_config import (IMAGE_ENCODER_FOLDER, IP_ADAPTER_FILE, TINY_ADAPTERS_VERSION, ModelSpec,
                                          tiny_ip_adapter_folder)
from pixelserve.engine.demo import tiny

#: TINY_ADAPTERS_VERSION (core/model_config.py): bump it when a layout or size changes, so stale files are rebuilt.
LORA_RANK = 4
TI_VECTORS = 2


def _generator(kind: str, family: str) -> torch.Generator:
    seed = sum(map(ord, f"{kind}/{family}")) * 7919
    return torch.Generator().manual_seed(seed)


def _unet(family: str):
    """The tiny UNet's architecture (random weights: only its module names and shapes are used)."""
    from diffusers import UNet2DConditionModel

    if family == "sd":
        return UNet2DConditionModel(**tiny._UNET, cross_attention_dim=32, attention_head_dim=4)
    if family == "sdxl":
        return UNet2DConditionModel(**tiny._SDXL_UNET, cross_attention_dim=64,
                                    projection_class_embeddings_input_dim=80)
    raise ValueError(f"no tiny adapters for family {family!r} (sd or sdxl)")


def _check_family(family: str) -> None:
    if family not in ("sd", "sdxl"):
        raise ValueError(f"no tiny adapters for family {family!r} (sd or sdxl)")


def _atomic_save(tensors: dict[str, torch.Tensor], file: Path) -> Path:
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.partial")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(file)
    return file


# -- LoRA --------------------------------------------------------------------------------------
_ATTENTION_LINEARS = ("to_q", "to_k", "to_v", "to_out.0")
_TEXT_LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _sgm_name(name: str, layers_per_block: int) -> str:
    """diffusers UNet module path -> the original SDXL UNet's (input/middle/output blocks)."""
    parts = name.split(".")
    if parts[0] == "down_blocks":
        block, layer = int(parts[1]), int(parts[3])
        return ".".join(["input_blocks", str(1 + block * (layers_per_block + 1) + layer), "1", *parts[4:]])
    if parts[0] == "mid_block":
        return ".".join(["middle_block", "1", *parts[3:]])
    if parts[0] == "up_blocks":
        block, layer = int(parts[1]), int(parts[3])
        return ".".join(["output_blocks", str(block * (layers_per_block + 1) + layer), "1", *parts[4:]])
    raise ValueError(f"{name} has no place in the original SDXL UNet")


def _lora_pair(gen: torch.Generator, in_features: int, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    down = torch.randn(LORA_RANK, in_features, generator=gen) / in_features ** 0.5
    up = torch.randn(out_features, LORA_RANK, generator=gen) * 0.6
    return down.half(), up.half()


def lora_state_dict(family: str) -> dict[str, torch.Tensor]:
    """The kohya-layout LoRA tensors for the tiny ``family`` model (deterministic)."""
    _check_family(family)
    gen = _generator("lora", family)
    unet = _unet(family)
    lpb = unet.config.layers_per_block
    out: dict[str, torch.Tensor] = {}

    def add(prefix: str, module_path: str, linear: torch.nn.Linear) -> None:
        name = prefix + module_path.replace(".", "_")
        down, up = _lora_pair(gen, linear.in_features, linear.out_features)
        out[f"{name}.lora_down.weight"] = down
        out[f"{name}.lora_up.weight"] = up
        out[f"{name}.alpha"] = torch.tensor(float(LORA_RANK)).half()

    for path, module in unet.named_modules():
        in_attention = ".transformer_blocks." in path and (".attn1." in path or ".attn2." in path)
        if in_attention and any(path.endswith("." + n) for n in _ATTENTION_LINEARS):
            add("lora_unet_", path if family == "sd" else _sgm_name(path, lpb), module)
    encoders = ["lora_te_"] if family == "sd" else ["lora_te1_", "lora_te2_"]
    for prefix in encoders:
        for layer in range(tiny._TEXT["num_hidden_layers"]):
            for proj in _TEXT_LINEARS:
                size = tiny._TEXT["hidden_size"]
                add(prefix, f"text_model.encoder.layers.{layer}.self_attn.{proj}", torch.nn.Linear(size, size))
    return out


def ensure_tiny_lora(family: str, directory: Path) -> Path:
    """``<directory>/tiny-<family>-lora-v<N>.safetensors``: a kohya-layout LoRA for the tiny model."""
    file = Path(directory) / f"tiny-{family}-lora-v{TINY_ADAPTERS_VERSION}.safetensors"
    if file.is_file():
        return file
    return _atomic_save(lora_state_dict(family), file)


# -- textual inversion ------------------------------------------------------------------------
def textual_inversion_state_dict(family: str) -> dict[str, torch.Tensor]:
    _check_family(family)
    gen = _generator("ti", family)
    hidden = tiny._TEXT["hidden_size"]

    def vectors() -> torch.Tensor:
        return (torch.randn(TI_VECTORS, hidden, generator=gen) * 2.0).half()

    if family == "sd":
        return {"emb_params": vectors()}
    return {"clip_l": vectors(), "clip_g": vectors()}


def ensure_tiny_textual_inversion(family: str, directory: Path) -> Path:
    """An A1111 (SD: ``emb_params``) / SDXL (``clip_l`` + ``clip_g``) embedding of TI_VECTORS vectors."""
    file = Path(directory) / f"tiny-{family}-ti-v{TINY_ADAPTERS_VERSION}.safetensors"
    if file.is_file():
        return file
    return _atomic_save(textual_inversion_state_dict(family), file)


# -- VAE ---------------------------------------------------------------------------------------
def ensure_tiny_vae(family: str, directory: Path) -> Path:
    """A standalone original-layout VAE file with the tiny VAE's architecture, other weights."""
    from diffusers import AutoencoderKL

    from pixelserve.engine.weights.convert import vae_to_ldm

    _check_family(family)
    file = Path(directory) / f"tiny-{family}-vae-v{TINY_ADAPTERS_VERSION}.safetensors"
    if file.is_file():
        return file
    torch.manual_seed(sum(map(ord, f"vae/{family}")))
    vae = AutoencoderKL(**tiny._VAE)
    with torch.no_grad():  # a decoder visibly unlike the tiny model's own
        vae.decoder.conv_out.weight.mul_(3.0)
        vae.decoder.conv_out.bias.add_(0.3)
    return _atomic_save(vae_to_ldm(vae.state_dict()), file)


# -- ControlNet --------------------------------------------------------------------------------
def ensure_tiny_controlnet(family: str, directory: Path) -> Path:
    """``<directory>/tiny-<family>-controlnet-v<N>/``: a diffusers ControlNetModel folder (safetensors)."""
    from diffusers import ControlNetModel

    _check_family(family)
    folder = Path(directory) / f"tiny-{family}-controlnet-v{TINY_ADAPTERS_VERSION}"
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(sum(map(ord, f"controlnet/{family}")))
    controlnet = ControlNetModel.from_unet(_unet(family), conditioning_embedding_out_channels=(8, 8, 8, 8),
                                           load_weights_from_unet=False)
    with torch.no_grad():  # the zero-initialised output convolutions, as if trained: control has an effect
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0.0, 0.5)
            module.bias.normal_(0.0, 0.1)
        embedding = controlnet.controlnet_cond_embedding  # strong enough that the map's content shows
        for conv in [embedding.conv_in, *embedding.blocks]:
            conv.weight.mul_(4.0)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    controlnet.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


# -- IP-Adapter (image prompts; configured per model, not an asset) ----------------------------


def ensure_tiny_ip_adapter(family: str, directory: Path) -> Path:
    """``<directory>/tiny-<family>-ip-adapter-v<N>/`` with ``ip-adapter.safetensors`` (the original
    IP-Adapter layout: ``image_proj.{proj,norm}.*`` and ``ip_adapter.<n>.to_{k,v}_ip.weight``, n = 1, 3,
    5 ... over the UNet's cross-attention layers) and ``image_encoder/`` (a tiny
    CLIPVisionModelWithProjection with its CLIPImageProcessor), for the model config's
    ``ip_adapter`` and ``image_encoder`` keys."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    _check_family(family)
    folder = tiny_ip_adapter_folder(directory, family)
    if (folder / IP_ADAPTER_FILE).is_file():
        return folder
    torch.manual_seed(sum(map(ord, f"ip-adapter/{family}")))
    embed = 32
    unet = _unet(family)
    cross = unet.config.cross_attention_dim
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * cross, embed) * 0.5, "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    channels = unet.config.block_out_channels
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = int(name.split(".")[1]) if not name.startswith("mid_block") else None
        hidden = (channels[-1] if block is None else
                  list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block])
        for kv in ("k", "v"):
            tensors[f"ip_adapter.{key_id}.to_{kv}_ip.weight"] = torch.randn(hidden, cross) * 0.5
        key_id += 2
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _atomic_save(tensors, tmp / IP_ADAPTER_FILE)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=embed, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        image_size=32, patch_size=4))
    encoder.save_pretrained(tmp / IMAGE_ENCODER_FOLDER, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp / IMAGE_ENCODER_FOLDER)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def ensure_demo_parts(spec: ModelSpec) -> None:
    """Build the tiny refiner and IP-Adapter a demo model's spec names (core/model_config.demo_config),
    where they are not built yet."""
    if spec.refiner is not None and not (spec.refiner / "model_index.json").exists():
        tiny.ensure_tiny_model("sdxl-refiner", spec.refiner.parent)
    if spec.ip_adapter is not None and not spec.ip_adapter.exists():
        ensure_tiny_ip_adapter(spec.family, spec.ip_adapter.parent.parent)


#: kind -> builder(family, directory) -> Path. Kinds are the asset types they stand for.
BUILDERS: dict[str, Callable[[str, Path], Path]] = {
    "lora": ensure_tiny_lora,
    "textual_inversion": ensure_tiny_textual_inversion,
    "vae": ensure_tiny_vae,
    "controlnet": ensure_tiny_controlnet,
}
TINY_ADAPTER_FAMILIES = ("sd", "sdxl")


def tiny_adapters() -> list[tuple[str, str]]:
    """Every (kind, family) this module builds: what ``ensure_tiny_adapter`` accepts."""
    return [(kind, family) for kind in BUILDERS for family in TINY_ADAPTER_FAMILIES]


def ensure_tiny_adapter(kind: str, family: str, directory: Path) -> Path:
    """Build (once) and return the tiny ``kind`` adapter for ``family`` under ``directory``."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown tiny adapter kind {kind!r}; one of {sorted(BUILDERS)}")
    return BUILDERS[kind](family, Path(directory))
