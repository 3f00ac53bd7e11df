"""Adapters change the image: a LoRA uploaded through the asset protocol changes the next request
that names it and not one that does not; a textual inversion's trigger word changes the output; a
VAE, a checkpoint; ControlNets through both controlnet engines with preprocessing on and off.

Needs the engine to honour the adapter fields (branch octengine). Images are compared as PNG."""

import numpy as np
import pytest

from tests.api.octoai.assets import single_file_controlnet, tiny_files, upload
from tests.api.octoai.helpers import b64_image, decode, locs, small


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_cache):
    from pixelserve.engine.weights.convert import save_single_file
    from pixelserve.engine.demo.tiny import ensure_tiny_model

    folder = tmp_path_factory.mktemp("adapters")
    made = tiny_files(folder)
    for family in ("sd", "sdxl"):
        made[("checkpoint", family)] = save_single_file(ensure_tiny_model(family, tiny_cache / "tiny"),
                                                        folder / f"ckpt-{family}.safetensors", family)
        made[("controlnet-file", family)] = single_file_controlnet(family, tiny_cache, folder)
    return made


def pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(decode(response.json()["images"][0]["image_b64"]).convert("RGB"), dtype=np.int16)


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).mean()) > 1.0


@pytest.mark.parametrize("engine,family", [("sd", "sd"), ("sdxl", "sdxl")])
def test_lora_changes_only_the_requests_that_name_it(octo, octo_client, octo_key, files, engine, family):
    body = small(seed=5, image_encoding="png", prompt="a red house")
    before = pixels(octo(body, engine=engine))
    asset = upload(octo_client, octo_key, f"style-{family}", "lora", engine, files[("lora", family)].read_bytes())
    assert asset["status"] == "ready", asset["status_details"]
    with_lora = pixels(octo({**body, "loras": {f"style-{family}": 1.0}}, engine=engine))
    after = pixels(octo(body, engine=engine))
    assert differs(before, with_lora)
    assert np.array_equal(before, after)  # nothing leaked into the next request
    half = pixels(octo({**body, "loras": {f"style-{family}": 0.3}}, engine=engine))
    assert differs(half, with_lora) and differs(half, before)  # the weight matters


@pytest.mark.parametrize("engine,family", [("sd", "sd"), ("sdxl", "sdxl")])
def test_textual_inversion_trigger_word_changes_the_output(octo, octo_client, octo_key, files, engine, family):
    asset = upload(octo_client, octo_key, f"emb-{family}", "textual_inversion", engine,
                   files[("textual_inversion", family)].read_bytes(), trigger_words=["zqtok"])
    assert asset["status"] == "ready", asset["status_details"]
    body = small(seed=9, image_encoding="png", prompt="a zqtok on a table")
    plain = pixels(octo(body, engine=engine))
    with_ti = pixels(octo({**body, "textual_inversions": {f"emb-{family}": "zqtok"}}, engine=engine))
    assert differs(plain, with_ti)
    default_word = pixels(octo({**body, "textual_inversions": {f"emb-{family}": None}}, engine=engine))
    assert np.array_equal(with_ti, default_word)  # null: the asset's own trigger word
    no_trigger = small(seed=9, image_encoding="png", prompt="a cup on a table")
    assert np.array_equal(pixels(octo(no_trigger, engine=engine)),
                          pixels(octo({**no_trigger, "textual_inversions": {f"emb-{family}": "zqtok"}}, engine=engine)))


def test_vae_and_checkpoint_assets(octo, octo_client, octo_key, files):
    body = small(seed=2, image_encoding="png")
    plain = pixels(octo(body))
    assert upload(octo_client, octo_key, "other-vae", "vae", "sd", files[("vae", "sd")].read_bytes())["status"] == "ready"
    assert differs(plain, pixels(octo({**body, "vae": "other-vae"})))
    ckpt = upload(octo_client, octo_key, "same-weights", "checkpoint", "sd", files[("checkpoint", "sd")].read_bytes())
    assert ckpt["status"] == "ready", ckpt["status_details"]
    assert pixels(octo({**body, "checkpoint": "same-weights"})).shape == plain.shape  # loads and runs


@pytest.mark.parametrize("engine,asset", [("controlnet-sd15", "octoai:canny_sd15"), ("controlnet-sdxl", "octoai:canny_sdxl")])
def test_controlnet_engines_with_preprocessing_on_and_off(octo, engine, asset):
    body = small(seed=4, image_encoding="png", controlnet=asset, controlnet_image=b64_image())
    on = pixels(octo(body, engine=engine))
    off = pixels(octo({**body, "controlnet_preprocess": False}, engine=engine))
    assert differs(on, off)  # the canny map, not the photo, guided the first
    other = pixels(octo({**body, "controlnet_image": b64_image(colour=(10, 10, 240))}, engine=engine))
    early = pixels(octo({**body, "controlnet_early_stop": 0.5, "steps": 4}, engine=engine))
    assert early.shape == on.shape and (differs(on, other) or differs(off, other))


def test_private_controlnet_upload(octo, octo_client, octo_key, files):
    asset = upload(octo_client, octo_key, "my-canny", "checkpoint", "controlnet-sd15",
                   files[("controlnet-file", "sd")].read_bytes())
    assert asset["status"] == "ready", asset["status_details"]
    r = octo(small(controlnet="my-canny", controlnet_image=b64_image()), engine="controlnet-sd15")
    assert r.status_code == 200, r.text


def test_transfer_images_work_on_the_demo_models(octo):
    """The demo's SD and SDXL have a tiny IP-Adapter (#16): OctoAI's transfer_images works out of the box,
    and the image prompt changes the image. Without an IP-Adapter it is a 501: tests/engine/test_checks.py."""
    for engine in ("sd", "sdxl"):
        with_image = octo(small(prompt="a trigger_word_1 on a throne", seed=5,
                                transfer_images={"trigger_word_1": [b64_image(colour=(250, 10, 10))]}), engine=engine)
        without = octo(small(prompt="a trigger_word_1 on a throne", seed=5), engine=engine)
        assert with_image.status_code == 200 and without.status_code == 200, (with_image.text, without.text)
        assert with_image.json()["images"][0]["image_b64"] != without.json()["images"][0]["image_b64"]


def test_token_limits(octo):
    assert octo(small(prompt="a " * 70), engine="sdxl").status_code == 200
    assert locs(octo(small(prompt="a " * 80), engine="sdxl")) == [["body", "prompt"]]
    assert octo(small(prompt="a " * 200)).status_code == 200  # SD 1.5: 231 tokens in 77-token chunks
    assert locs(octo(small(prompt="a " * 240))) == [["body", "prompt"]]
    assert octo(small(prompt="(" * 20 + "word:1.5)" * 20 + " x " * 50), engine="sdxl").status_code < 500


def test_a_style_presets_words_do_not_count_against_the_callers_prompt(octo):
    # SD 1.5: the caller's 220 tokens fit its 225; the template's words go into a further chunk.
    assert octo(small(prompt="a " * 220, style_preset="anime")).status_code == 200
    assert locs(octo(small(prompt="a " * 240, style_preset="anime"))) == [["body", "prompt"]]
    # SDXL (one chunk): the caller's 70 tokens fit, the template's do not: the error names the preset.
    r = octo(small(prompt="a " * 70, style_preset="anime"), engine="sdxl")
    assert locs(r) == [["body", "style_preset"]] and "'anime' preset adds" in r.text, r.text
    assert locs(octo(small(prompt="a " * 80, style_preset="anime"), engine="sdxl")) == [["body", "prompt"]]
    assert octo(small(prompt="a cat", style_preset="anime"), engine="sdxl").status_code == 200


def test_an_ordinary_long_prompt_counts_as_on_real_weights(octo):
    # 138 ordinary words are 156 CLIP tokens: within SD 1.5's 225 (the generated vocabulary the tiny
    # models had before counted such prompts at 2-3 tokens a word and refused them).
    words = ("a quiet harbor town at dawn with fishing boats, gulls over the water, warm light on old "
             "stone houses, mist on the hills ") * 6
    assert len(words.split()) == 138
    assert octo(small(prompt=words)).status_code == 200
