"""The real CLIP BPE tokenizer, built offline from the vocabulary open_clip ships.

Single-file checkpoints carry no tokenizer. Every SD / SDXL text encoder uses the same
49,408-token CLIP BPE vocabulary, and ``open_clip_torch`` ships it as
``bpe_simple_vocab_16e6.txt.gz``; we build ``vocab.json`` / ``merges.txt`` from it the way
CLIP's own ``SimpleTokenizer`` does, so nothing has to be downloaded.

open_clip is only *located*, never imported (importing it pulls torchvision).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
#: 256 byte tokens, 256 byte+"</w>" tokens, 48,894 merges, 2 special tokens.
VOCAB_SIZE = 49408
_N_MERGES = 49152 - 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


class ClipVocabUnavailable(RuntimeError):
    """open_clip_torch (which ships the CLIP BPE vocabulary) is not installed."""


def bpe_vocab_path() -> Path:
    """Where open_clip_torch keeps the gzipped CLIP BPE merges, without importing it."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / VOCAB_FILE
        if candidate.is_file():
            return candidate
    raise ClipVocabUnavailable(
        f"the CLIP tokenizer vocabulary ({VOCAB_FILE}) ships with open_clip_torch; install it "
        "(pip install open_clip_torch --no-deps) to load single-file checkpoints without a tokenizer folder"
    )


def clip_vocab_and_merges(bpe_file: Path) -> tuple[list[str], list[str]]:
    """CLIP's token list (index = id) and its merge rules ("a b" lines), from the gzipped merges."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.decompress(bpe_file.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : _N_MERGES + 1]  # line 0 is a version header
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    if len(vocab) != VOCAB_SIZE or len(set(vocab)) != VOCAB_SIZE:
        raise ValueError(f"{bpe_file} does not hold the CLIP BPE vocabulary ({len(vocab)} tokens)")
    return vocab, merges


def write_clip_tokenizer(folder: Path) -> Path:
    """Write a CLIPTokenizer (vocab.json, merges.txt and its saved configs) into ``folder`` once."""
    folder = Path(folder)
    if all((folder / name).is_file() for name in ("vocab.json", "merges.txt", "tokenizer_config.json")):
        return folder
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges(bpe_vocab_path())
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    ids = {tok: i for i, tok in enumerate(vocab)}
    (tmp / "vocab.json").write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(
        vocab=ids, merges=[tuple(m.split()) for m in merges],
        bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS, model_max_length=77,
    )
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)  # a partial earlier write
    try:
        tmp.rename(folder)
    except OSError:  # written by another process meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
