"""Weights format detection by content. Imports no torch: cheap to run anywhere, the API process included.

Weights come only from local paths, only as safetensors: a diffusers folder (``model_index.json``)
or one ``.safetensors`` checkpoint as A1111/ComfyUI users keep them. The file name never decides.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


class WeightsFormatError(ValueError):
    """The weights path holds nothing pixelserve will load (pickle, unknown layout)."""


#: safetensors refuses headers over 100 MB; pixelserve refuses them before opening the file.
MAX_SAFETENSORS_HEADER = 100_000_000


def check_safetensors(path: Path) -> None:
    """Refuse ``path`` unless its content starts like safetensors with a sane header length.

    safetensors: an 8-byte little-endian header length, then a JSON object. The length is checked
    before anything maps the file: one longer than the file, or than safetensors' own 100 MB cap,
    is a forged or broken file. The name never matters (a pickle called .safetensors is refused).
    """
    with Path(path).open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n < min(Path(path).stat().st_size, MAX_SAFETENSORS_HEADER):
            return
    raise WeightsFormatError(f"{path} is not a safetensors file; only safetensors weights are loaded")


def tensor_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file's header, read as JSON (no tensor is mapped, no torch)."""
    check_safetensors(path)
    with Path(path).open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def detect_format(path: Path) -> str:
    """'diffusers' for a diffusers folder, 'single_file' for a safetensors checkpoint."""
    path = Path(path)
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return "diffusers"
        raise WeightsFormatError(f"{path} is a folder without model_index.json (not a diffusers model)")
    if path.is_file():
        check_safetensors(path)
        return "single_file"
    raise WeightsFormatError(f"{path} does not exist")


def check_diffusers_folder_is_safetensors(path: Path) -> None:
    """Refuse a diffusers folder whose components exist only as pickle (.bin/.ckpt/.pt), or whose
    .safetensors files are not safetensors by content."""
    index = json.loads((path / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        sub = path / name
        if not sub.is_dir():
            continue
        weights = [p for p in sub.iterdir() if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth")]
        if weights and not any(p.suffix == ".safetensors" for p in weights):
            raise WeightsFormatError(f"{sub} has only pickle weights; convert them to safetensors")
        for p in weights:
            if p.suffix == ".safetensors":
                check_safetensors(p)
