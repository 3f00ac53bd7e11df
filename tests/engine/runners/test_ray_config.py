"""The Ray Serve engine's configuration, without a cluster: multiplexing keys, model groups,
deployment options from settings, and `pixelserve serve --engine ray --ray-address ...`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pixelserve.core.model_config import demo_config
from pixelserve.core.request import GenerationRequest, LoraRef, TextualInversionRef
from pixelserve.engine.runners.ray_serve import ReplicaOptions, adapter_key, model_groups
from pixelserve.settings import Settings


def req(**kw) -> GenerationRequest:
    return GenerationRequest(**{"model": "tiny-sd", "prompt": "a cat", **kw})


def test_the_multiplexed_id_is_the_adapter_set():
    assert adapter_key(req()) == "" and adapter_key(req(prompt="other", steps=5)) == ""  # no adapters: no routing
    a = req(loras=(LoraRef("ink", "/assets/ink.safetensors", 0.8),))
    assert adapter_key(a) == adapter_key(req(prompt="a dog", loras=a.loras)) != ""  # same set, same replicas
    assert adapter_key(a) != adapter_key(req(loras=(LoraRef("ink", "/assets/ink.safetensors", 0.5),)))
    assert adapter_key(a) != adapter_key(req(loras=a.loras, checkpoint="/ckpt/anime.safetensors"))
    ti = req(textual_inversions=(TextualInversionRef("neg", "/assets/neg.safetensors", "<neg>"),))
    assert adapter_key(ti) not in ("", adapter_key(a))


def test_model_groups_default_to_one_per_model():
    specs = demo_config().models
    assert model_groups(specs, {}) == {"tiny-sd": ["tiny-sd"], "tiny-sdxl": ["tiny-sdxl"], "tiny-unclip": ["tiny-unclip"]}
    assert model_groups(specs, {"sd": ["tiny-sd", "tiny-sdxl"]}) == {"sd": ["tiny-sd", "tiny-sdxl"],
                                                                       "tiny-unclip": ["tiny-unclip"]}
    with pytest.raises(ValueError, match="unknown models: nope"):
        model_groups(specs, {"g": ["tiny-sd", "nope"]})


def test_the_demo_models_share_one_group_that_fits_one_cpu(tmp_path):
    """Three groups of one CPU each never all start on a 2-core machine; the demo's default is one."""
    from pixelserve.core.model_config import ModelsConfig
    from pixelserve.ray_app import build_engine, group_settings, replica_options

    demo = Settings(data_dir=tmp_path, engine="ray")
    engine = build_engine(demo)
    assert engine.groups == {"demo": ["tiny-sd", "tiny-sdxl", "tiny-unclip"]}
    sizes = replica_options(demo)
    assert len(engine.groups) * sizes.min_replicas * sizes.num_cpus <= 1
    chosen = Settings(data_dir=tmp_path, engine="ray", ray_model_groups={"sd": ["tiny-sd"]})
    assert build_engine(chosen).groups == {"sd": ["tiny-sd"], "tiny-sdxl": ["tiny-sdxl"], "tiny-unclip": ["tiny-unclip"]}
    configured = Settings(data_dir=tmp_path, engine="ray")
    configured.__dict__["models"] = ModelsConfig(models=demo_config().models)  # as if from a TOML: not the demo
    assert group_settings(configured) == {}  # real models: one group per model, as before


def test_deployment_options_from_settings(tmp_path):
    from pixelserve.ray_app import replica_options

    fixed = replica_options(Settings(data_dir=tmp_path, ray_min_replicas=2, ray_num_gpus=1))
    opts = fixed.deployment_options("engine-sd")
    assert opts["num_replicas"] == 2 and "autoscaling_config" not in opts
    assert opts["ray_actor_options"] == {"num_gpus": 1, "num_cpus": 1}
    scaled = replica_options(Settings(data_dir=tmp_path, ray_min_replicas=1, ray_max_replicas=4,
                                      ray_target_ongoing_requests=3, max_batch_size=8)).deployment_options("e")
    assert scaled["autoscaling_config"]["min_replicas"] == 1 and scaled["autoscaling_config"]["max_replicas"] == 4
    assert scaled["autoscaling_config"]["target_ongoing_requests"] == 3 and "num_replicas" not in scaled
    assert scaled["max_ongoing_requests"] >= 8  # a replica can hold a full batch
    assert ReplicaOptions(min_replicas=3, max_replicas=1).deployment_options("e")["num_replicas"] == 3


def test_serve_takes_the_engine_and_ray_address(monkeypatch, tmp_path):
    import pixelserve.app
    from pixelserve.cli import cli

    seen = {}

    def fake_create_app(settings):
        seen["settings"] = settings
        raise SystemExit(0)  # stop before a server starts

    monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(pixelserve.app, "create_app", fake_create_app)
    r = CliRunner().invoke(cli, ["serve", "--engine", "ray", "--ray-address", "ray://head:10001"])
    assert r.exit_code == 0, r.output
    assert seen["settings"].engine == "ray" and seen["settings"].ray_address == "ray://head:10001"
    r = CliRunner().invoke(cli, ["serve", "--engine", "gpu-magic"])
    assert r.exit_code != 0
    from pixelserve.app import build_engine
    from pixelserve.engine.runners.ray_serve import RayEngine

    engine = build_engine(Settings(data_dir=tmp_path, engine="ray", ray_address="auto",
                                   ray_model_groups={"all": ["tiny-sd", "tiny-sdxl", "tiny-unclip"]}))
    assert isinstance(engine, RayEngine) and engine.address == "auto" and list(engine.groups) == ["all"]
    assert not engine.health().ready  # nothing connected until start()
