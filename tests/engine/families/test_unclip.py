"""The unclip (Karlo) family: tiny model on disk, loading, txt2img, variations, progress, cancel."""

import asyncio
import json
import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pixelserve.core.model_config import ModelSpec, demo_config
from pixelserve.core.request import GenerationRequest
from pixelserve.engine.demo import tiny
from pixelserve.engine.families import family_for
from pixelserve.engine.families.base import JobCancelled
from pixelserve.engine.families.unclip import SUPER_RES_STEPS, UnCLIPFamily
from pixelserve.engine.runners.local import LocalEngine
from pixelserve.engine.runners.models import ModelRegistry
from pixelserve.engine.weights.formats import WeightsFormatError
from pixelserve.errors import Cancelled, InvalidRequest, NotSupported
from tests.engine.helpers import cancel_at

FAMILY = family_for("unclip")


@pytest.fixture(scope="module")
def folder(tiny_cache):
    return tiny.ensure_tiny_model("unclip", tiny_cache / "tiny")


@pytest.fixture(scope="module")
def model(tiny_cache):
    return ModelRegistry({"u": ModelSpec("u", "unclip", None)}, tiny_cache).get("u", "cpu")


def req(**kw):
    base = dict(model="u", prompt="a cat", width=64, height=64, steps=3, prior_steps=3, seeds=(1,))
    base.update(kw)
    return GenerationRequest(**base)


def variation(**kw):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8))
    return req(task="variation", prompt="", init_image=image, prior_steps=None, **kw)


def pixels(images):
    return [np.asarray(im) for im in images]


# -- the tiny model on disk, and loading ----------------------------------------------------
def test_tiny_folder_layout_is_safetensors_only(folder):
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "UnCLIPPipeline"
    for part in ("prior", "decoder", "text_proj", "super_res_first", "super_res_last", "text_encoder", "image_encoder"):
        assert list((folder / part).glob("*.safetensors")), part
    assert (folder / "feature_extractor" / "preprocessor_config.json").is_file()
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert not any(f.endswith((".bin", ".ckpt", ".pt", ".pth")) for f in files)


def test_tiny_unclip_is_deterministic(tmp_path):
    import hashlib

    def digest(path):
        return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(path.rglob("*.safetensors"))}

    a, b = (tiny.ensure_tiny_model("unclip", tmp_path / n) for n in "ab")
    assert digest(a) == digest(b) and len(digest(a)) == 7


def test_registry_loads_every_weight_from_disk(folder, model):
    assert type(model.pipe).__name__ == "UnCLIPPipeline"
    modules = {name: getattr(model.pipe, name) for name in ("prior", "decoder", "text_proj", "super_res_first",
                                                           "super_res_last", "text_encoder")}
    modules["image_encoder"] = model.extras["image_encoder"]
    for name, module in modules.items():
        on_disk = load_file(next((folder / name).glob("*.safetensors")))
        loaded = module.state_dict()
        assert on_disk.keys() <= loaded.keys(), name
        assert all(torch.equal(on_disk[k], loaded[k]) for k in on_disk), name
    assert model.extras["feature_extractor"].crop_size == {"height": 32, "width": 32}


def test_variation_pipeline_shares_the_loaded_modules(model):
    schedulers = FAMILY.schedulers(model.pipe, None)
    pipe = FAMILY.call_pipeline(model, "variation", {k: v for k, v in schedulers.items() if k != "prior_scheduler"})
    assert type(pipe).__name__ == "UnCLIPImageVariationPipeline"
    for name in ("decoder", "super_res_first", "super_res_last", "text_proj", "text_encoder"):
        assert getattr(pipe, name) is getattr(model.pipe, name), name
    assert pipe.image_encoder is model.extras["image_encoder"]
    assert pipe.decoder_scheduler is not model.pipe.decoder_scheduler  # per-call scheduler state


def test_karlo_model_index_naming_loads(folder, tmp_path):
    """kakaobrain/karlo-v1-alpha names the text projection ["unclip", ...], a module diffusers moved."""
    karlo = tmp_path / "karlo"
    shutil.copytree(folder, karlo)
    index = json.loads((karlo / "model_index.json").read_text())
    index["text_proj"] = ["unclip", "UnCLIPTextProjModel"]
    (karlo / "model_index.json").write_text(json.dumps(index))
    loaded = ModelRegistry({"k": ModelSpec("k", "unclip", karlo)}, tmp_path).get("k", "cpu")
    assert type(loaded.pipe.text_proj).__name__ == "UnCLIPTextProjModel"


def test_refuses_single_files_and_incomplete_folders(folder, tmp_path):
    single = next((folder / "decoder").glob("*.safetensors"))
    with pytest.raises(WeightsFormatError, match="diffusers folder only"):
        ModelRegistry({"s": ModelSpec("s", "unclip", single)}, tmp_path).get("s", "cpu")
    no_encoder = tmp_path / "no-encoder"
    shutil.copytree(folder, no_encoder)
    shutil.rmtree(no_encoder / "image_encoder")
    with pytest.raises(WeightsFormatError, match="image_encoder"):
        ModelRegistry({"n": ModelSpec("n", "unclip", no_encoder)}, tmp_path).get("n", "cpu")
    pickled = tmp_path / "pickled"
    shutil.copytree(folder, pickled)
    for st in (pickled / "image_encoder").glob("*.safetensors"):
        st.rename(st.with_name("pytorch_model.bin"))
    with pytest.raises(WeightsFormatError, match="safetensors"):
        ModelRegistry({"p": ModelSpec("p", "unclip", pickled)}, tmp_path).get("p", "cpu")


# -- txt2img --------------------------------------------------------------------------------
def test_txt2img_reports_every_step_of_the_three_stages(model):
    seen = []
    images = FAMILY.run(model, req(steps=4, prior_steps=3, seeds=(1, 2), num_images=2),
                        on_step=lambda s, t: seen.append((s, t)))
    total = 3 + 4 + SUPER_RES_STEPS
    assert seen == [(i, total) for i in range(1, total + 1)]
    assert [im.size for im in images] == [(64, 64), (64, 64)]
    assert images[0].tobytes() != images[1].tobytes()


def test_same_seed_same_bytes_other_seed_other_image(model):
    a, b, c = (FAMILY.run(model, req(seeds=(s,)))[0] for s in (5, 5, 6))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_prior_steps_and_guidance_drive_the_prior(model, monkeypatch):
    made = []
    real = UnCLIPFamily.schedulers

    def spy(base, name):
        made.append(real(base, name))
        return made[-1]

    monkeypatch.setattr(UnCLIPFamily, "schedulers", staticmethod(spy))
    three = FAMILY.run(model, req(prior_steps=3))[0]
    six = FAMILY.run(model, req(prior_steps=6))[0]
    assert [len(s["prior_scheduler"].timesteps) for s in made] == [3, 6]
    assert [len(s["decoder_scheduler"].timesteps) for s in made] == [3, 3]
    assert three.tobytes() != six.tobytes()
    unguided = FAMILY.run(model, req(prior_steps=3, prior_guidance_scale=1.0))[0]
    assert unguided.tobytes() != three.tobytes()


def test_default_prior_steps_and_negative_prompt(model):
    seen = []
    plain = FAMILY.run(model, req(prior_steps=None), on_step=lambda s, t: seen.append(t))[0]
    assert seen[-1] == 25 + 3 + SUPER_RES_STEPS
    negative = FAMILY.run(model, req(prior_steps=None, negative_prompt="a dog"))[0]
    assert negative.tobytes() != plain.tobytes()


def test_output_is_resized_to_the_requested_size(model):
    native = FAMILY.run(model, req(seeds=(9,)))[0]
    assert native.size == (64, 64)  # the tiny super-resolution UNet's sample_size
    resized = FAMILY.run(model, req(seeds=(9,), width=96, height=80))[0]
    assert resized.size == (96, 80)
    assert resized.tobytes() == native.resize((96, 80), Image.Resampling.LANCZOS).tobytes()


@pytest.mark.parametrize("name, cls", [(None, "UnCLIPScheduler"), ("ddim", "DDIMScheduler"),
                                       ("ddpm", "DDPMScheduler")])
def test_decoder_samplers_keep_the_prediction_type(model, name, cls):
    decoder = FAMILY.schedulers(model.pipe, name)["decoder_scheduler"]
    assert type(decoder).__name__ == cls
    assert decoder.config.prediction_type == model.pipe.decoder_scheduler.config.prediction_type
    seen = []
    [image] = FAMILY.run(model, req(scheduler=name, steps=1), on_step=lambda s, t: seen.append((s, t)))
    decoder_steps = 2 if name is None else 1  # UnCLIPScheduler needs two steps
    assert seen[-1] == (3 + decoder_steps + SUPER_RES_STEPS,) * 2
    assert image.size == (64, 64) and np.asarray(image).std() > 0


def test_other_samplers_are_not_supported(model):
    with pytest.raises(NotSupported, match="ddim or ddpm"):
        FAMILY.run(model, req(scheduler="euler"))


def test_cancel_stops_between_steps(model):
    cancel = threading.Event()
    seen = []

    def progress(step, total):
        seen.append(step)
        if step == 2:
            cancel.set()

    with pytest.raises(JobCancelled):
        FAMILY.run(model, req(steps=50), on_step=progress, cancel=cancel)
    assert seen == [1, 2]


# -- variations -----------------------------------------------------------------------------
def test_variation_of_a_pil_image(model):
    seen = []
    a = FAMILY.run(model, variation(seeds=(1, 2), num_images=2), on_step=lambda s, t: seen.append((s, t)))
    total = 3 + SUPER_RES_STEPS  # no prior: the image embedding drives the decoder
    assert seen == [(i, total) for i in range(1, total + 1)]
    assert [im.size for im in a] == [(64, 64), (64, 64)] and a[0].tobytes() != a[1].tobytes()
    again = FAMILY.run(model, variation(seeds=(1,)))[0]
    assert np.abs(pixels([again])[0].astype(int) - pixels(a)[0]).max() <= 1  # batch of 2 vs 1: float rounding
    assert FAMILY.run(model, variation(seeds=(1,)))[0].tobytes() == again.tobytes()
    other = req(task="variation", prompt="", init_image=Image.new("RGB", (80, 80), "white"), seeds=(1,))
    assert FAMILY.run(model, other)[0].tobytes() != again.tobytes()
    assert FAMILY.run(model, variation(seeds=(1,), width=128, height=128))[0].size == (128, 128)


def test_variation_needs_an_image(model):
    with pytest.raises(InvalidRequest):
        FAMILY.run(model, req(task="variation", prompt=""))


# -- through the engine ---------------------------------------------------------------------
def test_demo_config_serves_tiny_unclip():
    spec = demo_config().models["tiny-unclip"]
    assert spec.family == "unclip" and spec.tasks == ("txt2img", "variation") and spec.is_demo


def test_local_engine_progress_cancel_and_variation(tiny_cache):
    spec = ModelSpec("tiny-unclip", "unclip", None)

    async def go():
        engine = LocalEngine({spec.id: spec}, tiny_cache)
        await engine.start()
        await engine.wait_ready()
        try:
            steps = []
            result = await engine.submit("a", req(model=spec.id, seeds=(1, 2), num_images=2),
                                         lambda s, t: steps.append((s, t)))
            progress, seen = cancel_at(engine, "long")
            with pytest.raises(Cancelled):
                await engine.submit("long", req(model=spec.id, steps=200), progress)
            varied = await engine.submit("v", variation(model=spec.id, width=96, height=96))
        finally:
            await engine.stop()
        return result, steps, seen, varied

    result, steps, seen, varied = asyncio.run(go())
    total = 3 + 3 + SUPER_RES_STEPS
    assert steps == [(i, total) for i in range(1, total + 1)]
    assert [im.size for im in result.images] == [(64, 64), (64, 64)] and result.seeds == [1, 2]
    assert max(seen) < 200
    assert [im.size for im in varied.images] == [(96, 96)]
