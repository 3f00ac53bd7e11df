import pytest

from pixelserve.core.model_config import ConfigError, demo_config, load_models_config


def write(tmp_path, text):
    f = tmp_path / "models.toml"
    f.write_text(text)
    return f


def test_demo_config_is_the_tiny_models():
    cfg = demo_config()
    assert cfg.demo and set(cfg.models) == {"tiny-sd", "tiny-sdxl", "tiny-unclip"}
    assert all(m.is_demo for m in cfg.models.values())


def test_the_demo_names_a_tiny_refiner_and_ip_adapters_in_the_servers_cache(tmp_path):
    """#16: the vendors' samples (OctoAI use_refiner, transfer_images) work on the demo models."""
    models = demo_config(tmp_path).models
    assert models["tiny-sdxl"].refiner == tmp_path / "tiny" / "tiny-sdxl-refiner-v2"
    assert models["tiny-sd"].refiner is None and models["tiny-unclip"].refiner is None
    for model_id in ("tiny-sd", "tiny-sdxl"):
        assert models[model_id].ip_adapter.parent == models[model_id].image_encoder.parent
        assert models[model_id].ip_adapter.is_relative_to(tmp_path / "tiny")
    assert models["tiny-unclip"].ip_adapter is None
    assert all(m.refiner is None and m.ip_adapter is None for m in demo_config().models.values())


def test_the_engine_builds_the_demos_parts_where_the_config_names_them(tmp_path):
    from pixelserve.engine.demo import tiny_adapters

    spec = demo_config(tmp_path).models["tiny-sdxl"]
    tiny_adapters.ensure_demo_parts(spec)
    assert (spec.refiner / "model_index.json").is_file() and spec.ip_adapter.is_file()
    assert (spec.image_encoder / "config.json").is_file()


def test_loads_relative_paths(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "one.safetensors").write_bytes(b"x")
    cfg = load_models_config(write(tmp_path, """
[models.xl]
family = "sdxl"
path = "base"
[models.v15]
family = "sd"
path = "one.safetensors"
[karlo]
"v2.1" = "xl"
"""))
    assert cfg.models["xl"].path == (tmp_path / "base").resolve()
    assert cfg.models["v15"].family == "sd" and cfg.dialect_tables == {"karlo": {"v2.1": "xl"}}
    assert cfg.base_dir == tmp_path


@pytest.mark.parametrize("text, words", [
    ("", "no [models"),
    ("[models.a]\nfamily='dalle'\npath='.'", "family"),
    ("[models.a]\nfamily='sd'\npath='missing'", "does not exist"),
    ("[models.a]\nfamily='sd'\npath='.'\nrefiner='.'", "refiner"),
    ("[models.a]\nfamily='sd'\npath='.'\ncolour='red'", "unknown keys"),
    ("not toml [", "cannot read"),
])
def test_bad_config_fails_with_a_reason(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        load_models_config(write(tmp_path, text))
    assert words in str(e.value)


def test_bad_config_fails_at_app_creation(tmp_path):
    from pixelserve.app import create_app
    from pixelserve.settings import Settings

    with pytest.raises(ConfigError):
        create_app(Settings(data_dir=tmp_path, models_config=write(tmp_path, "[models.a]\nfamily='x'\npath='.'")))


def test_single_file_refiner_needs_its_config(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "refiner.safetensors").write_bytes(b"x")
    (tmp_path / "refiner-cfg").mkdir()
    text = "[models.xl]\nfamily='sdxl'\npath='base'\nrefiner='refiner.safetensors'\n"
    with pytest.raises(ConfigError, match="refiner_config"):
        load_models_config(write(tmp_path, text))
    cfg = load_models_config(write(tmp_path, text + "refiner_config='refiner-cfg'\n"))
    assert cfg.models["xl"].refiner_config == (tmp_path / "refiner-cfg").resolve()
