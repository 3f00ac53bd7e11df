"""The model cache: bounded in bytes per device, least recently used out, held models kept."""

import pytest

from pixelserve.core.model_config import ModelSpec
from pixelserve.engine.runners.models import ModelRegistry


def spec(mid, family="sd"):
    return ModelSpec(mid, family, None)


@pytest.fixture(scope="module")
def sizes(tiny_cache):
    registry = ModelRegistry({"a": spec("a"), "x": spec("x", "sdxl")}, tiny_cache)
    a, x = registry.get("a", "cpu"), registry.get("x", "cpu")
    return {"sd": a.nbytes(), "sdxl": x.nbytes(), "params": sum(
        p.numel() * p.element_size() for m in (a.pipe.unet, a.pipe.vae, a.pipe.text_encoder) for p in m.parameters())}


def test_size_counts_every_parameter_and_buffer(sizes):
    assert sizes["sd"] >= sizes["params"] > 0
    assert sizes["sd"] < 2 * sizes["params"]  # buffers are few; shared modules are not counted twice


def test_least_recently_used_goes_first(tiny_cache, sizes):
    budget = 2 * sizes["sd"] + sizes["sd"] // 2  # room for two sd models, not three
    registry = ModelRegistry({m: spec(m) for m in "abc"}, tiny_cache, max_bytes=budget)
    registry.get("a", "cpu")
    registry.get("b", "cpu")
    registry.get("a", "cpu")  # a is now the most recently used
    registry.get("c", "cpu")
    assert [registry.is_loaded(m, "cpu") for m in "abc"] == [True, False, True]
    assert registry.loaded_bytes("cpu") <= budget


def test_a_model_in_use_is_never_unloaded(tiny_cache, sizes):
    registry = ModelRegistry({m: spec(m) for m in "ab"}, tiny_cache, max_bytes=sizes["sd"])  # room for one
    with registry.using("a", "cpu") as held:
        registry.get("b", "cpu")  # over budget, but a is held: b is the one that can go, and it is needed now
        assert registry.is_loaded("a", "cpu") and registry.is_loaded("b", "cpu") and held.spec.id == "a"
    # released: the budget holds again, the least recently used (a) went
    assert [registry.is_loaded(m, "cpu") for m in "ab"] == [False, True]


def test_models_added_later_go_before_configured_ones(tiny_cache, sizes):
    registry = ModelRegistry({"a": spec("a")}, tiny_cache, max_bytes=2 * sizes["sd"] + sizes["sd"] // 2)
    registry.register(spec("override"))
    registry.get("override", "cpu")
    registry.get("a", "cpu")
    loads = []

    def loader(device):
        loads.append(device)
        return registry._load(spec("ckpt"), device)

    registry.get_or_load("ckpt", "cpu", loader)  # the third: the added, least recently used one goes
    assert registry.is_loaded("a", "cpu") and registry.is_loaded("ckpt", "cpu")
    assert not registry.is_loaded("override", "cpu")
    assert registry.get_or_load("ckpt", "cpu", loader) is registry.get("ckpt", "cpu") and loads == ["cpu"]


def test_prepare_runs_after_every_load(tiny_cache, sizes):
    prepared = []
    registry = ModelRegistry({m: spec(m) for m in "ab"}, tiny_cache, max_bytes=sizes["sd"],
                             prepare=lambda model: prepared.append(model.spec.id))
    for m in "aba":
        registry.get(m, "cpu")
    assert prepared == ["a", "b", "a"]  # a was unloaded for b, and prepared again when loaded again


def test_unbounded_by_default(tiny_cache):
    registry = ModelRegistry({m: spec(m) for m in "ab"}, tiny_cache)
    registry.get("a", "cpu")
    registry.get("b", "cpu")
    assert registry.is_loaded("a", "cpu") and registry.is_loaded("b", "cpu")
