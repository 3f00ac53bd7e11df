"""Load one A1111 / ComfyUI-style ``.safetensors`` checkpoint as a diffusers pipeline, offline.

A single-file checkpoint holds weights only. The architecture comes from a diffusers folder
of component configs: the one the model spec names, or the SD 1.5 / SDXL base configs shipped
in ``engine/weights/configs/<family>/``, completed with the real CLIP tokenizer (``clip_vocab``) in
``<work_dir>/<family>-config/``. ``from_single_file`` is then given that local folder, so it
never looks for configs on the Hub; with ``local_files_only=True`` nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pixelserve.engine.weights import clip_vocab
from pixelserve.engine.weights.formats import WeightsFormatError, detect_format

log = logging.getLogger(__name__)

SHIPPED_CONFIGS = Path(__file__).parent / "configs"
_STAMP = ".pixelserve-config"
#: The OpenCLIP bigG text tower of an SDXL base checkpoint (text_encoder_2).
_SDXL_OPEN_CLIP = "conditioner.embedders.1.model."


def shipped_config(family: str) -> Path:
    folder = SHIPPED_CONFIGS / family
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"no shipped single-file config for family {family!r}; name a diffusers config folder")
    return folder


def _tokenizer_names(folder: Path) -> list[str]:
    index = json.loads((folder / "model_index.json").read_text())
    return [name for name, value in index.items()
            if isinstance(value, list) and len(value) == 2 and value[1] == "CLIPTokenizer"]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def assemble_config(family: str, work_dir: Path) -> Path:
    """``<work_dir>/<family>-config``: the shipped configs plus CLIP tokenizer vocabularies (built once)."""
    src = shipped_config(family)
    work_dir = Path(work_dir)
    dest = work_dir / f"{family}-config"
    stamp = _digest(src)
    if (dest / _STAMP).is_file() and (dest / _STAMP).read_text() == stamp:
        return dest
    vocab = clip_vocab.write_clip_tokenizer(work_dir / "clip-tokenizer")
    tmp = Path(tempfile.mkdtemp(prefix=f".{family}-config-", dir=work_dir))
    shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in _tokenizer_names(src):  # shipped tokenizer_config / special tokens win (pad "!" of tokenizer_2)
        (tmp / name).mkdir(exist_ok=True)
        for file in ("vocab.json", "merges.txt"):
            shutil.copyfile(vocab / file, tmp / name / file)
    (tmp / _STAMP).write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:  # another process assembled it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("assembled %s single-file config in %s", family, dest)
    return dest


def _safetensors_path(path: Path, work_dir: Path) -> Path:
    """diffusers picks its reader by file extension: make sure it is the safetensors one."""
    if path.suffix == ".safetensors":
        return path
    links = Path(work_dir) / "links"
    links.mkdir(parents=True, exist_ok=True)
    link = links / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16] + ".safetensors")
    if not link.is_symlink() or link.resolve() != path.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
    return link


def _sdxl_open_clip(path: Path, config: Path, torch_dtype: Any) -> Any | None:
    """text_encoder_2 from the ``conditioner.embedders.1.model.*`` tensors only.

    diffusers picks the tensors for ``text_encoder_2`` by comparing hidden sizes; when both text
    encoders have the same width it would load CLIP-L's. Handing it only the OpenCLIP tensors
    removes the guess.
    """
    import importlib

    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = [k for k in f.keys() if k.startswith(_SDXL_OPEN_CLIP)]
        if not keys:
            return None
        tensors = {k: f.get_tensor(k) for k in keys}
    library, class_name = json.loads((config / "model_index.json").read_text())["text_encoder_2"]
    cls = getattr(importlib.import_module(library), class_name)
    return create_diffusers_clip_model_from_ldm(
        cls, checkpoint=tensors, subfolder="text_encoder_2", config=str(config),
        torch_dtype=torch_dtype, local_files_only=True,
    )


def load_single_file(pipeline_cls: Any, path: Path, *, family: str, config_dir: Path | None, work_dir: Path,
                     torch_dtype: Any, **components: Any) -> Any:
    """``pipeline_cls`` from the safetensors checkpoint ``path``; ``components`` are passed in as loaded."""
    path = Path(path)
    if detect_format(path) != "single_file":
        raise WeightsFormatError(f"{path} is not a single-file safetensors checkpoint")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if config_dir is None:
        config = assemble_config(family, work_dir)
    else:
        config = Path(config_dir)
        if not (config / "model_index.json").is_file():
            raise WeightsFormatError(f"config {config} is not a diffusers folder (no model_index.json)")
    path = _safetensors_path(path, work_dir)
    index = json.loads((config / "model_index.json").read_text())
    if "text_encoder_2" not in components and (index.get("text_encoder_2") or [None])[0] is not None:
        encoder = _sdxl_open_clip(path, config, torch_dtype)
        if encoder is not None:
            components["text_encoder_2"] = encoder
    log.info("loading single-file checkpoint %s with configs from %s", path, config)
    return pipeline_cls.from_single_file(
        str(path), config=str(config), local_files_only=True, torch_dtype=torch_dtype, **components,
    )
