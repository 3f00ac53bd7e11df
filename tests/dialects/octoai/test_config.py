"""The [octoai] table of the models TOML: engines, public ControlNets and checkpoints."""

import pytest

from pixelserve.core.model_config import ConfigError, demo_config, load_models_config
from pixelserve.dialects.octoai.config import load

MODELS = """
[models.xl]
family = "sdxl"
path = "xl"
[models.xl2]
family = "sdxl"
path = "xl"
[models.v15]
family = "sd"
path = "v15"
"""


def write(tmp_path, extra: str = ""):
    for d in ("xl", "v15", "cn"):
        (tmp_path / d).mkdir(exist_ok=True)
    f = tmp_path / "models.toml"
    f.write_text(MODELS + extra)
    return load(load_models_config(f))


def test_demo_serves_every_engine_and_the_doc_sample_assets():
    octo = load(demo_config())
    assert octo.engines == {"sdxl": "tiny-sdxl", "sd": "tiny-sd", "controlnet-sdxl": "tiny-sdxl",
                            "controlnet-sd15": "tiny-sd"}
    assert {n: (c.family, c.path, c.preprocess) for n, c in octo.controlnets.items()} == {
        "canny_sdxl": ("sdxl", None, "canny"), "canny_sd15": ("sd", None, "canny")}
    assert octo.checkpoints == {"RealVisXL": "tiny-sdxl"}


def test_defaults_without_an_octoai_table(tmp_path):
    octo = write(tmp_path)
    assert octo.engines == {"sdxl": "xl", "sd": "v15", "controlnet-sdxl": "xl", "controlnet-sd15": "v15"}
    assert octo.checkpoints == {"RealVisXL": "xl"} and octo.controlnets == {}


def test_full_table(tmp_path):
    octo = write(tmp_path, """
[octoai.engines]
sdxl = "xl2"
[octoai.controlnets.canny_sdxl]
family = "sdxl"
path = "cn"
preprocess = "canny"
[octoai.checkpoints]
RealVisXL = "xl"
dreamshaper = "v15"
""")
    assert octo.engines["sdxl"] == octo.engines["controlnet-sdxl"] == "xl2"  # the controlnet engine follows
    assert octo.controlnets["canny_sdxl"].path == (tmp_path / "cn").resolve()
    assert octo.checkpoints == {"RealVisXL": "xl", "dreamshaper": "v15"}


@pytest.mark.parametrize("extra,message", [
    ('[octoai.engines]\nsd3 = "xl"', "unknown engine"),
    ('[octoai.engines]\nsd = "xl"', "needs sd"),
    ('[octoai.engines]\nsdxl = "nope"', "unknown model"),
    ('[octoai.controlnets.c]\nfamily = "sd"\npath = "missing"', "does not exist"),
    ('[octoai.controlnets.c]\nfamily = "unclip"\npath = "cn"', "family"),
    ('[octoai.controlnets.c]\nfamily = "sd"\npath = "cn"\npreprocess = "depth"', "preprocess"),
    ('[octoai.checkpoints]\n"../x" = "xl"', "asset name"),
    ('[octoai.checkpoints]\nok = "nope"', "unknown model"),
    ('[octoai]\nsdxl = "xl"', "unknown keys"),
])
def test_bad_tables_fail_at_start(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        write(tmp_path, extra)


def test_a_bad_table_fails_at_app_creation(tmp_path):
    from pixelserve.app import create_app
    from pixelserve.settings import Settings

    write(tmp_path)
    (tmp_path / "models.toml").write_text(MODELS + '[octoai.engines]\nsd = "xl"')
    with pytest.raises(ConfigError, match="needs sd"):
        create_app(Settings(data_dir=tmp_path, models_config=tmp_path / "models.toml"))


def test_public_assets_and_the_models_uploads_are_checked_against(tmp_path):
    models = demo_config()
    octo = load(models)
    assert [(a.name, a.kind, a.family, a.path, a.model_id, a.preprocess) for a in octo.public_assets(models)] == [
        ("canny_sdxl", "controlnet", "sdxl", None, None, "canny"),
        ("canny_sd15", "controlnet", "sd", None, None, "canny"),
        ("RealVisXL", "checkpoint", "sdxl", None, "tiny-sdxl", None)]
    assert octo.family_models() == {"sdxl": "tiny-sdxl", "sd": "tiny-sd"}
