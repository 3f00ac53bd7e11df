"""Weights: only safetensors, recognised by content; forged headers refused before any mapping;
nothing in pixelserve can unpickle."""

import pickle
import re
import struct
from pathlib import Path

import pytest

from pixelserve.engine.weights.formats import MAX_SAFETENSORS_HEADER, WeightsFormatError, detect_format

SOURCE = Path(__file__).resolve().parents[2] / "pixelserve"


def test_no_code_path_can_unpickle():
    banned = re.compile(r"torch\.load\(|pickle\.loads?\(|weights_only\s*=\s*False|joblib\.load|numpy\.load\(.*allow_pickle")
    offenders = [f"{p.relative_to(SOURCE)}:{i}" for p in SOURCE.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert offenders == []


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt", ".bin", ".pt"])
def test_a_pickle_is_refused_whatever_its_name(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}))
    with pytest.raises(WeightsFormatError, match="not a safetensors"):
        detect_format(path)


@pytest.mark.parametrize("declared", [2**63, MAX_SAFETENSORS_HEADER + 1, 10_000])
def test_a_forged_header_length_is_refused_before_mapping(tmp_path, declared):
    path = tmp_path / "forged.safetensors"
    path.write_bytes(struct.pack("<Q", declared) + b'{"__metadata__": {}}' + b" " * 64)
    with pytest.raises(WeightsFormatError):
        detect_format(path)


def test_a_real_header_is_accepted(tmp_path):
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    path = tmp_path / "ok.bin"  # the name does not matter, the content does
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00\x00\x80\x3f")
    assert detect_format(path) == "single_file"


@pytest.mark.parametrize("content", [pickle.dumps({"w": 1}), struct.pack("<Q", 2**62) + b'{"x": 1}' + b" " * 64],
                         ids=["pickle-named-safetensors", "forged-header"])
def test_a_diffusers_folder_is_checked_file_by_file(tmp_path, content):
    from pixelserve.engine.weights.formats import check_diffusers_folder_is_safetensors

    (tmp_path / "model_index.json").write_text('{"_class_name": "X", "unet": ["diffusers", "UNet2DConditionModel"]}')
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(content)
    with pytest.raises(WeightsFormatError, match="not a safetensors"):
        check_diffusers_folder_is_safetensors(tmp_path)


def test_a_diffusers_folder_with_only_pickles_is_refused(tmp_path):
    from pixelserve.engine.weights.formats import check_diffusers_folder_is_safetensors

    (tmp_path / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DConditionModel"]}')
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(WeightsFormatError, match="only pickle"):
        check_diffusers_folder_is_safetensors(tmp_path)
