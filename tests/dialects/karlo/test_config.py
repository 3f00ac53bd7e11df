"""The [karlo] table of the models TOML: Karlo version -> model id."""

import pytest

from pixelserve.core.model_config import ConfigError, demo_config, load_models_config
from pixelserve.dialects.karlo.config import load
from pixelserve.errors import NotSupported


def write(tmp_path, text):
    f = tmp_path / "models.toml"
    f.write_text(text)
    return load(load_models_config(f))


def test_demo_maps_karlo_versions():
    cfg = load(demo_config())
    assert cfg.models == {"v2.1": "tiny-sdxl", "v2.0": "tiny-sd", "variations": "tiny-unclip"}
    # Karlo is an unCLIP model: the demo's variations decode the image embedding with tiny-unclip,
    # except when faces are to be repainted (unCLIP has no img2img): then the version's model.
    assert cfg.variations_model("v2.1") == cfg.variations_model("v2.0") == "tiny-unclip"
    assert cfg.variations_model("v2.1", repaint_faces=True) == "tiny-sdxl"


def test_table(tmp_path):
    cfg = write(tmp_path, "[models.a]\nfamily='sd'\npath='.'\n[models.b]\nfamily='sd'\npath='.'\n"
                          "[karlo]\n'v2.0'='a'\ninpainting='b'")
    assert cfg.model_for("v2.0") == "a" and cfg.inpainting_model("v2.0") == "b"
    assert cfg.variations_model("v2.0") == "a"  # no variations key: the version's model (img2img)
    with pytest.raises(NotSupported, match="v2.1 is not configured"):
        cfg.model_for("v2.1")
    with pytest.raises(NotSupported, match="v2.1 is not configured"):
        cfg.variations_model("v2.1")


def test_a_variations_model_serves_every_configured_version(tmp_path):
    cfg = write(tmp_path, "[models.a]\nfamily='sd'\npath='.'\n[models.u]\nfamily='unclip'\npath='.'\n"
                          "[karlo]\n'v2.0'='a'\nvariations='u'")
    assert cfg.variations_model("v2.0") == "u" and cfg.variations_model("v2.0", repaint_faces=True) == "a"
    with pytest.raises(NotSupported, match="v2.1 is not configured"):
        cfg.variations_model("v2.1")


def test_without_a_table_no_version_is_served(tmp_path):
    assert write(tmp_path, "[models.a]\nfamily='sd'\npath='.'").models == {}


@pytest.mark.parametrize("text, words", [
    ("[models.a]\nfamily='sd'\npath='.'\n[karlo]\n'v2.1'='b'", "unknown model"),
    ("[models.a]\nfamily='sd'\npath='.'\n[karlo]\n'v9'='a'", "unknown key"),
])
def test_bad_table_fails_with_a_reason(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        write(tmp_path, text)
    assert words in str(e.value)


def test_a_bad_table_fails_at_app_creation(tmp_path):
    from pixelserve.app import create_app
    from pixelserve.settings import Settings

    (tmp_path / "models.toml").write_text("[models.a]\nfamily='sd'\npath='.'\n[karlo]\n'v9'='a'")
    with pytest.raises(ConfigError, match="unknown key"):
        create_app(Settings(data_dir=tmp_path, models_config=tmp_path / "models.toml"))
