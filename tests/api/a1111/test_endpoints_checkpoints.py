"""A1111 checkpoint names (dialects/a1111/checkpoints.py): titles, hashes, and what resolves to a model."""

from __future__ import annotations

import hashlib

import pytest

from pixelserve.core.model_config import ModelSpec, demo_config
from pixelserve.dialects.a1111.checkpoints import CheckpointTable
from pixelserve.errors import InvalidRequest


@pytest.fixture
def table(tmp_path):
    weights = tmp_path / "v1-5-pruned.safetensors"
    weights.write_bytes(b"not really weights")
    folder = tmp_path / "sdxl-base"
    folder.mkdir()
    specs = [ModelSpec("sd15", "sd", weights), ModelSpec("xl", "sdxl", folder), ModelSpec("karlo", "unclip", folder)]
    return CheckpointTable(specs), hashlib.sha256(b"not really weights").hexdigest()


def test_single_file_has_hash_title_and_no_server_path(table):
    table, sha = table
    entries = {c["model_name"]: c for c in (c.wire() for c in table.list())}
    assert set(entries) == {"sd15", "xl"}  # unCLIP takes no A1111 sampling fields
    sd15 = entries["sd15"]
    assert sd15 == {"title": f"sd15 [{sha[:10]}]", "model_name": "sd15", "hash": sha[:10], "sha256": sha,
                    "filename": "v1-5-pruned.safetensors", "config": None}
    assert entries["xl"] == {"title": "xl", "model_name": "xl", "hash": None, "sha256": None,
                             "filename": "sdxl-base", "config": None}


@pytest.mark.parametrize("name", ["sd15", "SD15", "v1-5-pruned.safetensors", "v1-5-pruned", "HASH10", "SHA",
                                  "TITLE", "sd15 [0123456789]"])
def test_resolve_every_name_a_client_sends(table, name):
    table, sha = table
    name = name.replace("HASH10", sha[:10]).replace("SHA", sha).replace("TITLE", f"sd15 [{sha[:10]}]")
    assert table.resolve(name) == "sd15"


def test_unknown_checkpoint_is_a_400_naming_the_field(table):
    table, _ = table
    with pytest.raises(InvalidRequest) as e:
        table.resolve("nope.safetensors [deadbeef00]")
    assert e.value.field == "sd_model_checkpoint" and "nope" in e.value.message
    with pytest.raises(InvalidRequest):
        table.resolve("karlo")  # configured, but not an A1111 checkpoint


def test_rehashes_a_changed_file(table, tmp_path):
    table, sha = table
    assert table.get("sd15").sha256 == sha
    (tmp_path / "v1-5-pruned.safetensors").write_bytes(b"other weights, other size")
    assert table.get("sd15").sha256 == hashlib.sha256(b"other weights, other size").hexdigest()


def test_demo_models():
    table = CheckpointTable.of(demo_config())
    assert [c.title for c in table.list()] == ["tiny-sd", "tiny-sdxl"]
    assert table.resolve("tiny-sdxl") == "tiny-sdxl"
