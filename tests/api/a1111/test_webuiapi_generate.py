"""The PyPI A1111 client ``webuiapi`` (0.9.17, pinned in the test extras) against a live pixelserve on
127.0.0.1: txt2img and img2img as it sends them (every field, its defaults), answers it parses, the
infotext in the PNG, LoRA tags, per-request checkpoint and format, and refusals as its RuntimeError."""

import base64
import io
import json

import numpy as np
import pytest
import requests
import webuiapi
from PIL import Image, ImageDraw

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.demo import tiny_adapters
from pixelserve.engine.demo.tiny_adapters import ensure_tiny_lora
from tests.conftest import make_settings
from tests.security.live import served

SMALL = dict(width=64, height=64, steps=3)
BOX = (16, 16, 39, 31)  # the repainted area (inclusive corners)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("a1111-gen"), tiny_cache))
    with served(app, "webuiapi") as server:
        lora = ensure_tiny_lora("sd", tmp_path_factory.mktemp("lora"))
        app.state.assets.add_file(f"key:{server.key_id}", lora, name="ink", kind="lora", family="sd")
        embedding = tiny_adapters.ensure_tiny_textual_inversion("sd", tmp_path_factory.mktemp("ti"))
        app.state.assets.add_file(f"key:{server.key_id}", embedding, name="sparkle", kind="textual_inversion",
                                  family="sd")
        app.state.studio.save_style(server.key_id, {"name": "noir", "prompt_template": "{prompt}, film noir",
                                                    "negative_prompt": "colour"})
        yield server


@pytest.fixture(scope="module")
def api(server):
    return webuiapi.WebUIApi(baseurl=f"{server.base}/sdapi/v1", username="me", password=server.key)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def picture(size=(64, 64)) -> Image.Image:
    img = Image.new("RGB", size, (40, 90, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((12, 12, 52, 52), fill=(230, 200, 40))
    d.line((0, 0, size[0], size[1]), fill=(255, 255, 255), width=3)
    return img


def white_box_mask(size=(64, 64), box=BOX) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rectangle(box, fill=255)
    return m


def test_txt2img_seeds_batch_sampler_and_infotext(api):
    out = api.txt2img(prompt="a lighthouse, (dusk:1.2)", negative_prompt="blurry", seed=7, batch_size=2, n_iter=2,
                      sampler_name="Euler", scheduler="karras", cfg_scale=5.5, **SMALL)
    assert len(out.images) == 4 and all(im.size == (64, 64) for im in out.images)
    assert out.info["all_seeds"] == [7, 8, 9, 10] and out.info["seed"] == 7
    assert out.info["sampler_name"] == "Euler" and out.info["sd_model_name"] == "tiny-sd"
    assert out.parameters["prompt"] == "a lighthouse, (dusk:1.2)" and out.parameters["batch_size"] == 2
    text = out.images[1].info["parameters"]  # the PNG's "parameters" text chunk
    assert text == out.info["infotexts"][1]
    assert text.startswith("a lighthouse, (dusk:1.2)\nNegative prompt: blurry\n")
    assert "Steps: 3, Sampler: Euler, Schedule type: Karras, CFG scale: 5.5, Seed: 8, Size: 64x64" in text
    again = api.txt2img(prompt="a lighthouse, (dusk:1.2)", negative_prompt="blurry", seed=7, batch_size=2,
                        sampler_name="Euler", scheduler="karras", cfg_scale=5.5, **SMALL)
    assert np.array_equal(pixels(again.images[0]), pixels(out.images[0]))  # a seed draws the same image
    assert not np.array_equal(pixels(out.images[0]), pixels(out.images[1]))


def test_random_seed_gives_consecutive_seeds(api):
    out = api.txt2img(prompt="a tree", batch_size=3, **SMALL)  # webuiapi sends seed -1, "Euler a", automatic
    seeds = out.info["all_seeds"]
    assert seeds == [seeds[0], seeds[0] + 1, seeds[0] + 2] and 0 <= seeds[0] < 4294967294
    assert "Sampler: Euler a, Schedule type: Automatic" in out.info["infotexts"][0]


def test_legacy_sampler_label_and_clip_skip(api):
    out = api.txt2img(prompt="a boat", seed=3, sampler_name="DPM++ 2M Karras", scheduler="automatic",
                      override_settings={"CLIP_stop_at_last_layers": 2}, **SMALL)
    text = out.images[0].info["parameters"]
    assert "Sampler: DPM++ 2M, Schedule type: Automatic" in text and "Clip skip: 2" in text
    assert out.info["clip_skip"] == 2


def test_lora_tag_from_the_callers_library(api):
    plain = api.txt2img(prompt="a cat", seed=11, **SMALL).images[0]
    with_lora = api.txt2img(prompt="a cat <lora:ink:1.0>", seed=11, **SMALL)
    assert not np.array_equal(pixels(plain), pixels(with_lora.images[0]))  # the LoRA changed the weights
    assert with_lora.info["prompt"] == "a cat <lora:ink:1.0>"  # reported as sent, as A1111 does
    after = api.txt2img(prompt="a cat", seed=11, **SMALL).images[0]
    assert np.array_equal(pixels(plain), pixels(after))  # and never leaks into the next job
    with pytest.raises(RuntimeError) as e:
        api.txt2img(prompt="a cat <lora:nobody:1>", seed=11, **SMALL)
    assert e.value.args[0] == 404 and "no LoRA named 'nobody'" in e.value.args[1]


def test_checkpoint_and_format_per_request(api):
    out = api.txt2img(prompt="a hill", seed=1, override_settings={"sd_model_checkpoint": "tiny-sdxl",
                                                                  "samples_format": "webp"}, **SMALL)
    assert out.info["sd_model_name"] == "tiny-sdxl" and out.images[0].format == "WEBP"
    comment = out.images[0].getexif().get_ifd(0x8769)[0x9286]
    assert comment.startswith(b"UNICODE\0") and b"S\0e\0e\0d\0:\0 \x001" in comment
    assert "Model: tiny-sdxl" in out.info["infotexts"][0]


def test_not_built_fields_and_unknown_names_are_400s(api):
    for kwargs, words in [(dict(seed_resize_from_h=100, seed_resize_from_w=64), "multiples of 8"), (dict(sampler_name="Nope"), "Sampler not found"),
                          (dict(styles=["nope"]), "no style named 'nope'"),
                          (dict(override_settings={"sd_model_checkpoint": "nope"}), "model 'nope' not found"),
                          (dict(prompt="a [cat:dog:0.5]", override_settings={"sd_model_checkpoint": "tiny-sdxl"}),
                           "built for sd models")]:
        with pytest.raises(RuntimeError) as e:
            api.txt2img(**{"prompt": "x", **SMALL, **kwargs})
        assert e.value.args[0] == 400 and words in e.value.args[1], kwargs
        body = json.loads(e.value.args[1])
        assert body["error"] == "InvalidRequest" and set(body) == {"error", "detail", "body", "errors"}


def test_img2img_mask_keeps_pixels_outside_it(api):
    src = picture()
    for full_res, fill in ((False, 1), (True, 0)):  # "only masked" at full resolution, and A1111's fill
        out = api.img2img(images=[src], mask_image=white_box_mask(), prompt="a red square", seed=5, mask_blur=0,
                          inpainting_fill=fill, inpaint_full_res=full_res, denoising_strength=0.9, **SMALL)
        got, sent = pixels(out.images[0]), pixels(src)
        outside = np.ones((64, 64), bool)
        outside[BOX[1]:BOX[3] + 1, BOX[0]:BOX[2] + 1] = False
        assert np.array_equal(got[outside], sent[outside]), (full_res, fill)
        assert not np.array_equal(got[~outside], sent[~outside])  # the box was repainted
        assert "Denoising strength: 0.9" in out.info["infotexts"][0]
        assert out.parameters["init_images"] is None and out.parameters["mask"] is None  # include_init_images off


def test_img2img_rgba_mask_alpha_and_invert(api):
    src = picture()
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # alpha > 128 repaints: only the box
    ImageDraw.Draw(mask).rectangle(BOX, fill=(0, 0, 0, 255))
    out = api.img2img(images=[src], mask_image=mask, prompt="x", seed=5, mask_blur=0, inpainting_fill=1,
                      inpaint_full_res=False, inpainting_mask_invert=1, **SMALL)  # inverted: all but the box
    got, sent = pixels(out.images[0]), pixels(src)
    inside = (slice(BOX[1], BOX[3] + 1), slice(BOX[0], BOX[2] + 1))
    assert np.array_equal(got[inside], sent[inside])


def test_img2img_resize_and_no_mask(api):
    out = api.img2img(images=[picture((96, 64))], prompt="x", seed=2, resize_mode=1, denoising_strength=0.5,
                      include_init_images=True, **SMALL)
    assert out.images[0].size == (64, 64) and out.parameters["init_images"][0].startswith("data:image/png")
    assert out.info["denoising_strength"] == 0.5


def test_force_task_id_is_the_job_id_and_wrong_password_is_401(server):
    body = {"prompt": "x", "seed": 1, "force_task_id": "my-task-1", **SMALL}
    r = requests.post(f"{server.base}/sdapi/v1/txt2img", json=body, auth=("me", server.key), timeout=120)
    assert r.status_code == 200 and r.headers["X-Job-Id"] == "my-task-1"
    job = requests.get(f"{server.base}/v1/jobs/my-task-1", headers={"Authorization": f"Bearer {server.key}"},
                       timeout=30)
    assert job.status_code == 200, job.text
    r = requests.post(f"{server.base}/sdapi/v1/txt2img", json=body, auth=("me", "wrong"), timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    images = base64.b64decode(requests.post(f"{server.base}/sdapi/v1/txt2img", json={**body, "force_task_id": None},
                                            auth=("me", server.key), timeout=120).json()["images"][0])
    assert Image.open(io.BytesIO(images)).info["parameters"].startswith("x\nSteps: 3")


def test_break_starts_a_new_chunk_on_sd_and_is_refused_on_sdxl(api):
    broken = api.txt2img(prompt="a cat BREAK a dog", seed=4, **SMALL).images[0]
    joined = api.txt2img(prompt="a cat a dog", seed=4, **SMALL).images[0]
    assert not np.array_equal(pixels(broken), pixels(joined))  # "BREAK" is no word of the prompt
    again = api.txt2img(prompt="a cat  BREAK  a dog", seed=4, **SMALL).images[0]  # spaces around it do not count
    assert np.array_equal(pixels(broken), pixels(again))
    with pytest.raises(RuntimeError) as e:
        api.txt2img(prompt="a cat BREAK a dog", seed=4, override_settings={"sd_model_checkpoint": "tiny-sdxl"},
                    **SMALL)
    assert e.value.args[0] == 400 and "BREAK makes 2 chunks" in e.value.args[1]


def test_enable_hr_second_pass_at_the_larger_size(api):
    out = api.txt2img(prompt="a castle", seed=9, enable_hr=True, hr_scale=1.5, hr_upscaler="Lanczos",
                      denoising_strength=0.6, hr_second_pass_steps=4, **SMALL)
    assert out.images[0].size == (96, 96)  # 64 x 1.5
    text = out.info["infotexts"][0]
    assert "Size: 64x64" in text and "Denoising strength: 0.6, Hires upscale: 1.5, Hires steps: 4, " \
                                     "Hires upscaler: Lanczos" in text
    plain = api.txt2img(prompt="a castle", seed=9, **SMALL).images[0]
    resized = np.asarray(plain.convert("RGB").resize((96, 96), Image.Resampling.LANCZOS), dtype=np.int16)
    assert not np.array_equal(pixels(out.images[0]), resized)  # the second pass repainted the resize
    wide = api.txt2img(prompt="a castle", seed=9, enable_hr=True, hr_resize_x=192, hr_upscaler="Nearest",
                       hr_sampler_name="DPM++ 2M", hr_prompt="a (castle:1.2) at night", width=128, height=64,
                       steps=2)
    assert wide.images[0].size == (192, 96) and "Hires resize: 192x0" in wide.info["infotexts"][0]
    latent = api.txt2img(prompt="a castle", seed=9, enable_hr=True, hr_scale=2, **SMALL)  # webuiapi: "Latent"
    assert latent.images[0].size == (128, 128) and "Hires upscaler: Latent" in latent.info["infotexts"][0]
    antialiased = api.txt2img(prompt="a castle", seed=9, enable_hr=True, hr_scale=2,
                              hr_upscaler="Latent (bicubic antialiased)", **SMALL)
    assert not np.array_equal(pixels(latent.images[0]), pixels(antialiased.images[0]))
    for kwargs, field in [(dict(hr_upscaler="R-ESRGAN 4x+"), "hr_upscaler"), (dict(hr_scale=9), "hr_scale"),
                          (dict(hr_second_pass_steps=1, denoising_strength=0.5), "hires"),
                          (dict(hr_checkpoint_name="tiny-sdxl"), "hr_checkpoint_name")]:
        with pytest.raises(RuntimeError) as e:
            api.txt2img(prompt="x", enable_hr=True, **{**SMALL, **kwargs})
        assert e.value.args[0] == 400 and field in e.value.args[1], kwargs


def test_restore_faces_runs_the_face_refiner(api):
    out = api.txt2img(prompt="a portrait", seed=6, restore_faces=True, **SMALL)
    assert out.info["restore_faces"] is True and out.info["face_restoration_model"] == "pixelserve face refiner"
    assert "Face restoration: pixelserve face refiner, " in out.info["infotexts"][0]
    assert out.images[0].size == (64, 64)


def test_styles_are_the_callers_studio_styles(api):
    out = api.txt2img(prompt="a street", negative_prompt="blurry", styles=["noir"], seed=2, **SMALL)
    assert out.info["prompt"] == "a street, film noir" and out.info["negative_prompt"] == "blurry, colour"
    assert out.info["styles"] == ["noir"] and out.parameters["prompt"] == "a street"  # the request as sent
    assert out.info["infotexts"][0].startswith("a street, film noir\nNegative prompt: blurry, colour\n")
    same = api.txt2img(prompt="a street, film noir", negative_prompt="blurry, colour", seed=2, **SMALL)
    assert np.array_equal(pixels(out.images[0]), pixels(same.images[0]))


def test_variation_seeds(api):
    common = dict(prompt="a fox", seed=5, sampler_name="Euler", **SMALL)  # Euler: no noise after the first
    plain = api.txt2img(**common).images[0]
    other = api.txt2img(**{**common, "seed": 100}).images[0]
    half = api.txt2img(**common, subseed=100, subseed_strength=0.5, batch_size=2)
    assert half.info["all_seeds"] == [5, 5] and half.info["all_subseeds"] == [100, 101]
    assert "Seed: 5, Size: 64x64, Model: tiny-sd, Variation seed: 101, Variation seed strength: 0.5" in \
        half.info["infotexts"][1]
    for img in (plain, other):
        assert not np.array_equal(pixels(half.images[0]), pixels(img))
    assert not np.array_equal(pixels(half.images[0]), pixels(half.images[1]))
    full = api.txt2img(**common, subseed=100, subseed_strength=1.0).images[0]
    assert np.abs(pixels(full) - pixels(other)).max() <= 2  # all the subseed's noise: the subseed's image
    none = api.txt2img(**common, subseed=100, subseed_strength=0).images[0]
    assert np.array_equal(pixels(none), pixels(plain))
    with pytest.raises(RuntimeError) as e:
        api.img2img(images=[picture()], prompt="x", subseed_strength=0.3, **SMALL)
    assert e.value.args[0] == 400 and "subseed_strength" in e.value.args[1]


def test_tiling(api):
    tiled = api.txt2img(prompt="a wall", seed=8, tiling=True, **SMALL)
    plain = api.txt2img(prompt="a wall", seed=8, **SMALL)
    assert "Tiling: True" in tiled.info["infotexts"][0] and "Tiling" not in plain.info["infotexts"][0]
    assert not np.array_equal(pixels(tiled.images[0]), pixels(plain.images[0]))
    again = api.txt2img(prompt="a wall", seed=8, **SMALL)  # the padding is switched back after the call
    assert np.array_equal(pixels(plain.images[0]), pixels(again.images[0]))


def test_prompt_editing_and_alternation_switch_the_embedding_during_sampling(api):
    def image(text, **kw):
        return pixels(api.txt2img(prompt=text, seed=12, sampler_name="Euler", **{**SMALL, "steps": 4, **kw}).images[0])

    cat, dog = image("a cat"), image("a dog")
    assert np.array_equal(image("[a cat:a dog:10]"), cat)  # switches after the last step: never
    assert np.array_equal(image("[a cat:a dog:0]"), dog)  # switches before the first: always
    edited, alternating = image("[a cat:a dog:0.5]"), image("[a cat|a dog]")
    for got in (edited, alternating):
        assert not np.array_equal(got, cat) and not np.array_equal(got, dog)
    assert not np.array_equal(edited, alternating)
    assert np.array_equal(image("[a cat:a dog:0.5]"), edited)  # deterministic
    long = " ".join(["a very detailed painting of a tall lighthouse on a rocky shore"] * 3)  # over 77 tokens
    assert image(f"[a cat:{long}:2]").shape == (64, 64, 3)  # embeddings of other lengths are padded
    out = api.txt2img(prompt="[a cat:a dog:2] <lora:ink:0.5>", seed=1, **SMALL)
    assert out.info["prompt"] == "[a cat:a dog:2] <lora:ink:0.5>"
    assert image("[a cat:a dog:1]", enable_hr=True, hr_scale=1.5, hr_upscaler="Lanczos").shape == (96, 96, 3)


def test_embeddings_by_name_in_the_prompt(api, server):
    with server.app.state.sessions() as s:
        _, other_key = create_key(s, "other", server.app.state.auth.secret)
    other = webuiapi.WebUIApi(baseurl=f"{server.base}/sdapi/v1", username="me", password=other_key)
    mine = api.txt2img(prompt="a cat, sparkle", seed=3, **SMALL).images[0]
    theirs = other.txt2img(prompt="a cat, sparkle", seed=3, **SMALL).images[0]  # no such embedding: plain words
    assert not np.array_equal(pixels(mine), pixels(theirs))
    plain = api.txt2img(prompt="a cat, sparkles", seed=3, **SMALL).images[0]  # another word: not the embedding
    assert np.array_equal(pixels(plain), pixels(other.txt2img(prompt="a cat, sparkles", seed=3, **SMALL).images[0]))


def test_seed_resize_from(api):
    common = dict(prompt="a fox", seed=5, sampler_name="Euler", **SMALL)
    plain = pixels(api.txt2img(**common).images[0])
    same_size = api.txt2img(**common, seed_resize_from_w=64, seed_resize_from_h=64)
    assert np.array_equal(pixels(same_size.images[0]), plain)  # the noise is drawn as the pipeline draws it
    assert "Seed resize from: 64x64" in same_size.info["infotexts"][0]
    for w, h in ((128, 128), (64, 128), (96, 64)):
        resized = pixels(api.txt2img(**common, seed_resize_from_w=w, seed_resize_from_h=h).images[0])
        assert not np.array_equal(resized, plain), (w, h)


def test_eta_for_ddim(api):
    common = dict(prompt="a fox", seed=5, sampler_name="DDIM", **SMALL)
    zero = api.txt2img(**common, eta=0)
    assert "Eta DDIM" not in zero.info["infotexts"][0]
    one = api.txt2img(**common, eta=1.0)  # webuiapi's default: DDIM's stochastic form, as A1111 runs it
    assert "Eta DDIM: 1.0" in one.info["infotexts"][0]
    assert not np.array_equal(pixels(zero.images[0]), pixels(one.images[0]))
    assert np.array_equal(pixels(zero.images[0]),
                          pixels(api.txt2img(**common, eta=0).images[0]))
    with pytest.raises(RuntimeError) as e:
        api.txt2img(prompt="a fox", sampler_name="Euler a", eta=0.5, **SMALL)
    assert e.value.args[0] == 400 and "eta" in e.value.args[1]
