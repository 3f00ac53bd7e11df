"""Korean prompts go through a local translation model when one is configured (safetensors only)."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.engine.text.prompt_translation import Translator, TranslationConfigError, build_tiny_translator
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE
from tests.conftest import make_settings, wait_ready

BODY = {"styleId": 1, "ratio": "1:1", "sample": 1}


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    return build_tiny_translator(tmp_path_factory.mktemp("translator"))


def test_korean_prompt_is_translated_before_drawing(tmp_path, tiny_cache, translator_dir):
    expected = Translator(translator_dir).translate("유니콘이 뛰어논다")
    assert expected and expected.strip("c") == ""  # the tiny model's "English"
    settings = make_settings(tmp_path, tiny_cache, studio_translation_model=translator_dir, **SMALL_SETTINGS)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        _, key = new_key(client.app)
        h = {"X-Api-Key": key}
        info = client.post(CREATE, headers=h, json={**BODY, "prompt": "유니콘이 뛰어논다"}).json()["images"][0]["GenerationInfo"]
        assert info["main"] == expected and info["promptSource"] == "prompt (translated)"
        assert info["originalPrompt"] == "유니콘이 뛰어논다" and expected in info["super"]
        english = client.post(CREATE, headers=h, json={**BODY, "prompt": "a unicorn"}).json()["images"][0]
        assert english["GenerationInfo"]["main"] == "a unicorn"  # English goes as sent
        enhanced = client.post(CREATE, headers=h, json={**BODY, "prompt": "유니콘", "enhancedPrompt": "a unicorn"})
        assert enhanced.json()["images"][0]["GenerationInfo"]["main"] == "a unicorn"


def test_only_safetensors_folders_are_accepted(tmp_path, translator_dir):
    pickled = tmp_path / "pickled"
    shutil.copytree(translator_dir, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(TranslationConfigError, match="safetensors"):
        Translator(pickled)
    with pytest.raises(TranslationConfigError, match="config.json"):
        Translator(tmp_path / "missing")
