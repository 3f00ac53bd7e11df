"""Tokenizers loaded once per process and shared by every pipeline that names the same files.

A CLIP tokenizer over the real 49,408-token vocabulary takes about 0.4 s to load (the slow Python
tokenizer parses vocab.json and merges.txt), and every pipeline load would repeat it: a server with
SDXL + refiner loads three. Reading and hashing the files (about 2 MB) takes a few ms. Tokenizers are only read once loaded (textual inversions add their
tokens to a copy: adapters/textual_inversion.py), so one instance is shared, read-only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

#: Distinct tokenizer folders kept; a server has a handful (its models), tests a few more.
KEEP = 16
_TOKENIZER_PARTS = ("tokenizer", "tokenizer_2")
_lock = threading.Lock()
_loaded: OrderedDict[tuple, Any] = OrderedDict()


def _key(folder: Path, class_name: str) -> tuple:
    """By content, not path: the same tokenizer is often in several folders (SDXL's two, a refiner's,
    copies of one model)."""
    digest = hashlib.sha256()
    for f in sorted(f for f in folder.iterdir() if f.is_file()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return class_name, digest.hexdigest()


def shared_tokenizers(path: Path) -> dict[str, Any]:
    """The tokenizers of the diffusers folder ``path`` (by ``model_index.json``), each loaded once per
    process: pass them to ``from_pretrained`` so it does not load them again."""
    import transformers

    index_file = Path(path) / "model_index.json"
    if not index_file.is_file():
        return {}
    index = json.loads(index_file.read_text())
    out = {}
    for part in _TOKENIZER_PARTS:
        entry = index.get(part)
        folder = Path(path) / part
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == "transformers" and folder.is_dir()):
            continue
        cls = getattr(transformers, str(entry[1]), None)
        if cls is not None and is_tokenizer(cls):
            out[part] = shared_tokenizer(folder, cls)
    return out


def is_tokenizer(cls: type) -> bool:
    import transformers

    return isinstance(cls, type) and issubclass(cls, transformers.PreTrainedTokenizerBase)


def shared_tokenizer(folder: Path, cls: type) -> Any:
    """``cls.from_pretrained(folder)``, once per process for the same files."""
    key = _key(Path(folder), cls.__name__)
    with _lock:  # one load per folder even when two models load at once
        tokenizer = _loaded.get(key)
        if tokenizer is None:
            tokenizer = cls.from_pretrained(folder, local_files_only=True)
            _loaded[key] = tokenizer
            while len(_loaded) > KEEP:
                _loaded.popitem(last=False)
        _loaded.move_to_end(key)
    return tokenizer
