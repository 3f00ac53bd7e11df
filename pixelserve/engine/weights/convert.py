"""Convert a diffusers folder into ONE original-layout (LDM / A1111 / ComfyUI) safetensors checkpoint.

The inverse of what ``from_single_file`` reads. Layout of the written file:

* UNet        ``model.diffusion_model.*``   (input_blocks / middle_block / output_blocks)
* VAE         ``first_stage_model.*``       (encoder.down.N.block.M, decoder.up reversed, 1x1-conv attention)
* SD 1.x      ``cond_stage_model.transformer.text_model.*``       (Hugging Face CLIP layout)
* SDXL        ``conditioner.embedders.0.transformer.text_model.*`` (CLIP-L, Hugging Face layout)
              ``conditioner.embedders.1.model.*``                  (OpenCLIP bigG layout: fused in_proj,
                                                                    text_projection as x @ W)

Tensors are copied bit for bit (only reshaped / concatenated), in their stored dtype.
Only safetensors are read and written. Usage::

    python -m pixelserve.engine.weights.convert /models/my-sdxl-diffusers /models/my-sdxl.safetensors --family sdxl
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from pixelserve.core.model_config import SINGLE_FILE_FAMILIES

_WEIGHTS = re.compile(r"^(diffusion_pytorch_model|model)(-\d+-of-\d+)?\.safetensors$")


def load_component(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of one diffusers component folder (sharded or not, no variants, never pickle)."""
    from safetensors.torch import load_file

    files = sorted(p for p in Path(folder).glob("*.safetensors") if _WEIGHTS.match(p.name))
    if not files:
        raise FileNotFoundError(f"{folder} holds no safetensors weights (diffusion_pytorch_model / model)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


# -- UNet --------------------------------------------------------------------------------------
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
}
_RESNET = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}


def _resnet(rest: str) -> str:
    layer, _, param = rest.partition(".")
    return f"{_RESNET[layer]}.{param}"


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel keys -> LDM ``openaimodel.UNetModel`` keys (same tensors).

    LDM numbers blocks flatly: input block 0 is conv_in, then each down block contributes
    ``layers_per_block`` [resnet, attention] blocks plus one downsample block (all but the last);
    each up block contributes ``layers_per_block + 1`` [resnet, attention, upsample] blocks.
    """
    if not isinstance(layers_per_block, int):
        raise ValueError("only UNets with one layers_per_block for every block are supported")
    n = layers_per_block
    up_with_attention = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out = {}
    for key, tensor in state.items():
        out[_unet_key(key, n, up_with_attention)] = tensor
    return out


def _unet_key(key: str, n: int, up_with_attention: set[int]) -> str:
    module, _, param = key.rpartition(".")
    if module in _UNET_FIXED:
        return f"{_UNET_FIXED[module]}.{param}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * (n + 1) + layer
        return f"input_blocks.{index}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * (n + 1) + n}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * (n + 1) + layer
        return f"output_blocks.{index}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if block in up_with_attention else 1  # the upsampler follows the attention, if any
        return f"output_blocks.{block * (n + 1) + n}.{slot}.conv.{m[2]}"
    raise ValueError(f"UNet weight {key!r} has no place in the original SD layout")


# -- VAE ---------------------------------------------------------------------------------------
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL keys -> LDM ``AutoencoderKL`` keys; attention linears become 1x1 convs."""
    n_up = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k))), default=-1)
    out = {}
    for key, tensor in state.items():
        new = _vae_key(key, n_up)
        if ".mid.attn_1." in new and new.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor.reshape(*tensor.shape, 1, 1)  # Linear -> Conv2d(kernel_size=1)
        out[new] = tensor
    return out


def _vae_key(key: str, n_up: int) -> str:
    if m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
        return f"{m[1]}.norm_out.{m[2]}"
    if re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.(weight|bias)|(post_)?quant_conv\.(weight|bias)", key):
        return key
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):  # LDM counts up blocks bottom-up
        return f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        if m[2] in _VAE_ATTENTION:
            return f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}"
    raise ValueError(f"VAE weight {key!r} has no place in the original SD layout")


# -- text encoders -----------------------------------------------------------------------------
def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face CLIPTextModel, keyed ``text_model.*`` as the original checkpoints keep it."""
    out = {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):  # a buffer, rebuilt on load
            continue
        out[key if key.startswith("text_model.") else f"text_model.{key}"] = tensor
    return out


_OPEN_CLIP_FIXED = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face CLIPTextModelWithProjection -> OpenCLIP text tower keys.

    OpenCLIP fuses q/k/v into one ``in_proj`` (rows q, then k, then v) and applies the
    projection as ``x @ text_projection``, the transpose of the Linear weight.
    """
    state = {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v
             for k, v in state.items() if not k.endswith("position_ids")}
    out, qkv = {}, {}
    for key, tensor in state.items():
        if key in _OPEN_CLIP_FIXED:
            out[_OPEN_CLIP_FIXED[key]] = tensor
        elif key == "text_projection.weight":
            out["text_projection"] = tensor.T.contiguous()
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            layer, module, param = m[1], m[2], m[3]
            if q := re.fullmatch(r"self_attn\.([qkv])_proj", module):
                qkv.setdefault((layer, param), {})[q[1]] = tensor
            elif module in _OPEN_CLIP_LAYER:
                out[f"transformer.resblocks.{layer}.{_OPEN_CLIP_LAYER[module]}.{param}"] = tensor
            else:
                raise ValueError(f"text encoder weight {key!r} has no place in the OpenCLIP layout")
        else:
            raise ValueError(f"text encoder weight {key!r} has no place in the OpenCLIP layout")
    for (layer, param), parts in qkv.items():
        if sorted(parts) != ["k", "q", "v"]:
            raise ValueError(f"text encoder layer {layer} lacks one of q/k/v {param}")
        out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


# -- the checkpoint ----------------------------------------------------------------------------
def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def to_original_layout(pipe_folder: Path, family: str) -> dict[str, torch.Tensor]:
    """The original-layout state dict of a diffusers SD / SDXL folder."""
    if family not in SINGLE_FILE_FAMILIES:
        raise ValueError(f"family must be one of {SINGLE_FILE_FAMILIES}, got {family!r}")
    pipe_folder = Path(pipe_folder)
    unet_config = json.loads((pipe_folder / "unet" / "config.json").read_text())
    state = _prefixed("model.diffusion_model.", unet_to_ldm(load_component(pipe_folder / "unet"),
                                                            unet_config["layers_per_block"]))
    state.update(_prefixed("first_stage_model.", vae_to_ldm(load_component(pipe_folder / "vae"))))
    if family == "sd":
        state.update(_prefixed("cond_stage_model.transformer.", clip_to_ldm(load_component(pipe_folder / "text_encoder"))))
        return state
    # SDXL: embedder 0 is CLIP-L, embedder 1 OpenCLIP bigG; a refiner has only the OpenCLIP one, as embedder 0.
    encoders = [name for name in ("text_encoder", "text_encoder_2") if (pipe_folder / name).is_dir()]
    for index, name in enumerate(encoders):
        weights = load_component(pipe_folder / name)
        if name == "text_encoder":
            state.update(_prefixed(f"conditioner.embedders.{index}.transformer.", clip_to_ldm(weights)))
        else:
            state.update(_prefixed(f"conditioner.embedders.{index}.model.", open_clip_to_ldm(weights)))
    return state


def save_single_file(pipe_folder: Path, out_file: Path, family: str) -> Path:
    """Write the diffusers folder ``pipe_folder`` as one original-layout safetensors file."""
    from safetensors.torch import save_file

    out_file = Path(out_file)
    if out_file.suffix != ".safetensors":
        raise ValueError(f"{out_file}: the single-file checkpoint is written as .safetensors")
    state = {k: v.contiguous() for k, v in to_original_layout(pipe_folder, family).items()}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".partial")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(out_file)
    return out_file


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipe_folder", type=Path, help="a diffusers folder (model_index.json)")
    parser.add_argument("out_file", type=Path, help="the .safetensors checkpoint to write")
    parser.add_argument("--family", choices=SINGLE_FILE_FAMILIES, required=True)
    args = parser.parse_args(argv)
    print(save_single_file(args.pipe_folder, args.out_file, args.family))


if __name__ == "__main__":
    main()
