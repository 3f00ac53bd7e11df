"""Optional Korean -> English prompt translation with a local transformers seq2seq model.

Configure ``PIXELSERVE_STUDIO_TRANSLATION_MODEL`` with a folder holding a MarianMT (for example a
Helsinki-NLP opus-mt-ko-en copy) or NLLB model saved with safetensors weights. Nothing is
downloaded (``local_files_only``) and only safetensors weights load (``use_safetensors``); the
folder is checked at start, the model loads on first use.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

#: NLLB language codes (an NLLB tokenizer knows them; a MarianMT model is one language pair).
NLLB_SOURCE, NLLB_TARGET = "kor_Hang", "eng_Latn"
MAX_NEW_TOKENS = 400


class TranslationConfigError(ValueError):
    """The configured translation folder cannot be used; raised at start."""


class Translator:
    def __init__(self, folder: Path, device: str = "cpu"):
        folder = Path(folder).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise TranslationConfigError(f"{folder} is not a transformers model folder (no config.json)")
        if not any(folder.glob("*.safetensors")):
            raise TranslationConfigError(f"{folder} has no .safetensors weights (pickled weights are never loaded)")
        self.folder = folder
        self.device = device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
                model = AutoModelForSeq2SeqLM.from_pretrained(self.folder, local_files_only=True,
                                                              use_safetensors=True).to(self.device).eval()
                self._loaded = (tokenizer, model)
            return self._loaded

    def translate(self, text: str) -> str:
        """The English text (stripped); '' when the model gives nothing back."""
        import torch

        tokenizer, model = self._load()
        extra = {}
        if NLLB_TARGET in tokenizer.get_vocab():  # NLLB: say which languages
            tokenizer.src_lang = NLLB_SOURCE
            extra["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(NLLB_TARGET)
        inputs = tokenizer([text], return_tensors="pt", truncation=True).to(self.device)
        limit = min(MAX_NEW_TOKENS, 2 * inputs["input_ids"].shape[1] + 16)
        with self._lock, torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=limit, num_beams=1, do_sample=False, **extra)
        return tokenizer.batch_decode(out, skip_special_tokens=True)[0].strip()


def build_tiny_translator(folder: Path, favour: str = "c") -> Path:
    """A tiny random-weight MarianMT model and byte-level tokenizer, saved as safetensors (tests).

    Its output is the ``favour`` character repeated (a logits bias), so tests can see the
    translation path without a real model. Kept here beside the loader it exercises.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    folder = Path(folder)
    specials = ["<pad>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=512, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0, forced_eos_token_id=None)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias[0, vocab[favour]] = 100.0
    model.save_pretrained(folder, safe_serialization=True)
    return folder
