"""PyPI ``webuiapi`` (0.9.17, pinned in the test extras) against a live pixelserve on 127.0.0.1 for
A1111's endpoints other than generation: models and per-key options, samplers, lists, png-info,
extras, and progress / interrupt of the caller's own job while it runs."""

from __future__ import annotations

import base64
import json
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import webuiapi
from PIL import Image, PngImagePlugin

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key, find_key
from pixelserve.engine.demo import tiny_adapters
from pixelserve.service.auth import Caller
from tests.conftest import make_settings
from tests.security.live import served

#: Enough steps for a tiny-model job to run a second or more on a CPU: long enough to watch it.
SLOW_STEPS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    tmp = tmp_path_factory.mktemp("a1111")
    app = create_app(make_settings(tmp, tiny_cache, preview_every=2, octoai_extra_sizes="64x64"))
    with served(app, "mine") as server:
        with app.state.sessions() as s:
            _, server.other = create_key(s, "other", app.state.auth.secret)
        lora = tiny_adapters.ensure_tiny_lora("sd", tmp / "adapters")
        app.state.assets.add_file(f"key:{server.key_id}", lora, name="my-style", kind="lora", family="sd")
        ti = tiny_adapters.ensure_tiny_textual_inversion("sd", tmp / "adapters")
        app.state.assets.add_file("public", ti, name="shared-word", kind="textual_inversion", family="sd")
        yield server


def api(server, key=None) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=f"{server.base}/sdapi/v1", username="anyone", password=key or server.key)


@pytest.fixture(scope="module")
def mine(server):
    return api(server)


@pytest.fixture(scope="module")
def theirs(server):
    return api(server, server.other)


def picture(size=(32, 24)) -> Image.Image:
    img = Image.new("RGB", size, (40, 90, 160))
    img.paste((230, 200, 40), (4, 4, size[0] // 2, size[1] // 2))
    return img


# -- models and each key's own options ------------------------------------------------------------
def test_sd_models_and_per_key_model(mine, theirs):
    models = mine.get_sd_models()
    assert [m["title"] for m in models] == ["tiny-sd", "tiny-sdxl"]  # demo models: no file to hash
    assert all(m["filename"] in ("tiny-sd", "tiny-sdxl") and "/" not in m["filename"] for m in models)
    assert mine.util_get_current_model() == "tiny-sd"  # nobody chose: the first checkpoint
    mine.util_set_model("tiny-sdxl")
    assert mine.util_get_current_model() == "tiny-sdxl"
    assert theirs.util_get_current_model() == "tiny-sd"  # one key's switch is not another's
    theirs.set_options({"sd_model_checkpoint": "tiny-sdxl", "CLIP_stop_at_last_layers": 2})
    mine.util_set_model("tiny-sd")
    assert (mine.get_options()["sd_model_checkpoint"], theirs.get_options()["sd_model_checkpoint"]) == (
        "tiny-sd", "tiny-sdxl")
    assert (mine.get_options()["CLIP_stop_at_last_layers"], theirs.get_options()["CLIP_stop_at_last_layers"]) == (1, 2)


def test_model_for_is_what_options_say(server, mine):
    mine.set_options({"sd_model_checkpoint": "tiny-sdxl"})
    defaults, app = server.app.state.a1111_defaults, server.app
    with app.state.sessions() as s:
        key_id = find_key(s, server.key, app.state.auth.secret)
    assert defaults.model_for(Caller(key_id, "mine")) == "tiny-sdxl"
    mine.set_options({"sd_model_checkpoint": "tiny-sd"})
    assert defaults.model_for(Caller(key_id, "mine")) == "tiny-sd"


@pytest.mark.parametrize("options, field", [
    ({"sd_model_checkpoint": "nope.safetensors [0123456789]"}, "sd_model_checkpoint"),
    ({"CLIP_stop_at_last_layers": 0}, "CLIP_stop_at_last_layers"),
    ({"samples_format": "gif"}, "samples_format"),
    ({"live_previews_enable": False}, "live_previews_enable"),  # describes the server: not settable
    ({"sd_vae": "kl-f8.safetensors"}, "sd_vae"),
    ({"no_such_option": 1}, "no_such_option"),
])
def test_bad_options_are_400_and_change_nothing(server, mine, options, field):
    before = mine.get_options()
    r = httpx.post(f"{server.base}/sdapi/v1/options", auth=("", server.key),
                   json={"samples_format": "webp", **options})
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidRequest" and field in r.json()["detail"]
    assert mine.get_options() == before  # the valid samples_format beside it was not stored either


def test_options_round_trip_as_webuiapi_sends_back(mine):
    options = mine.get_options()
    assert options["live_previews_enable"] is True and options["show_progress_every_n_steps"] == 2
    assert mine.set_options(options) is None  # every option set to what it is: accepted
    mine.set_options({"samples_format": "jpg"})
    assert mine.get_options()["samples_format"] == "jpg"
    mine.set_options({"samples_format": "png"})


# -- lists ---------------------------------------------------------------------------------------
def test_samplers_schedulers_scripts(mine):
    assert "Euler" in mine.util_get_sampler_names() and "Euler a" in mine.util_get_sampler_names()
    assert "automatic" in mine.util_get_scheduler_names() and "karras" in mine.util_get_scheduler_names()
    assert mine.get_scripts() == {"txt2img": [], "img2img": []}
    assert not mine.has_controlnet and not mine.has_adetailer  # so webuiapi adds no always-on scripts


def test_loras_are_the_callers_and_public(mine, theirs):
    loras = mine.get_loras()
    assert [(l["name"], l["alias"], l["path"]) for l in loras] == [("my-style", "my-style", "my-style.safetensors")]
    assert theirs.get_loras() == []


def test_the_other_lists(mine):
    assert [u["name"] for u in mine.get_upscalers()] == ["None", "Lanczos", "Nearest"]
    assert [m["name"] for m in mine.get_latent_upscale_modes()] == [
        "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
        "Latent (nearest-exact)"]
    assert mine.get_face_restorers() == [{"name": "pixelserve face refiner", "cmd_dir": None}]
    shared = {"shared-word": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                              "vectors": None}}
    assert mine.get_embeddings() == {"loaded": shared, "skipped": {}}
    assert mine.get_sd_vae() == [] and mine.get_hypernetworks() == []
    assert mine.get_realesrgan_models() == []
    styles = mine.get_prompt_styles()
    assert styles and all(set(s) == {"name", "prompt", "negative_prompt"} for s in styles)
    memory = mine.get_memory()
    assert memory["ram"]["total"] > memory["ram"]["free"] > 0 and "error" in memory["cuda"]  # CPU test box
    assert mine.get_cmd_flags()["api"] is True
    assert mine.refresh_checkpoints() is None


# -- images --------------------------------------------------------------------------------------
def test_png_info_reads_the_parameters_chunk(mine):
    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", "a cat\nNegative prompt: dogs\nSteps: 12, Sampler: Euler a, CFG scale: 6, "
                                "Seed: 42, Size: 64x48, Model: tiny-sd")
    meta.add_text("Software", "pixelserve test")
    buf = io.BytesIO()
    picture().save(buf, format="PNG", pnginfo=meta)
    result = mine.png_info(Image.open(io.BytesIO(buf.getvalue())))
    info = result.json
    assert info["info"].startswith("a cat\nNegative prompt: dogs")
    assert info["items"] == {"Software": "pixelserve test"}
    p = info["parameters"]
    assert (p["Prompt"], p["Negative prompt"], p["Steps"], p["Seed"], p["Size-1"], p["Size-2"]) == (
        "a cat", "dogs", "12", "42", "64", "48")


def test_png_info_of_a_plain_image(mine):
    assert mine.png_info(picture()).json == {"info": "", "items": {}, "parameters": {}}


def test_extras_upscale(mine):
    out = mine.extra_single_image(picture(), upscaler_1="Lanczos", upscaling_resize=2)
    assert out.image.size == (64, 48)
    same = mine.extra_single_image(picture(), upscaler_1="None")
    assert same.image.size == (32, 24) and same.image.tobytes() == picture().tobytes()
    cropped = mine.extra_single_image(picture(), resize_mode=1, upscaling_resize_w=40, upscaling_resize_h=40,
                                      upscaler_1="Nearest")
    assert cropped.image.size == (40, 40)
    batch = mine.extra_batch_images([picture(), picture((16, 16))], upscaler_1="Nearest", upscaling_resize=3)
    assert [im.size for im in batch.images] == [(96, 72), (48, 48)]


@pytest.mark.parametrize("kwargs, field", [
    ({"upscaler_1": "R-ESRGAN 4x+"}, "upscaler_1"),
    ({"upscaler_1": "Lanczos", "gfpgan_visibility": 0.5}, "gfpgan_visibility"),
    ({"upscaler_1": "Lanczos", "upscaling_resize": 0}, "upscaling_resize"),
])
def test_extras_refusals_name_the_field(mine, kwargs, field):
    with pytest.raises(RuntimeError) as e:
        mine.extra_single_image(picture(), **kwargs)
    assert e.value.args[0] == 400 and field in e.value.args[1]


# -- errors and auth -----------------------------------------------------------------------------
def test_errors_in_a1111_shapes(server):
    r = httpx.get(f"{server.base}/sdapi/v1/sd-models", auth=("", "wrong"))
    assert r.status_code == 401 and set(r.json()) == {"error", "detail", "body", "errors"}
    r = httpx.post(f"{server.base}/sdapi/v1/png-info", auth=("", server.key), json={})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "image"] and r.json()["detail"][0]["type"] == "missing"
    r = httpx.post(f"{server.base}/sdapi/v1/png-info", auth=("", server.key), json={"image": "not base64!"})
    assert r.status_code == 400 and "image" in r.json()["detail"]  # A1111: 500
    r = httpx.post(f"{server.base}/sdapi/v1/interrogate", auth=("", server.key), json={"image": "x"})
    assert r.status_code == 501 and r.json()["error"] == "NotSupported" and "interrogate" in r.json()["detail"]
    r = httpx.get(f"{server.base}/sdapi/v1/options", headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200  # Bearer works too
    assert float(r.headers["X-Process-Time"]) >= 0  # as A1111's middleware
    r = httpx.post(f"{server.base}/sdapi/v1/server-kill", auth=("", server.key))
    assert r.status_code == 404 and r.json()["error"] == "NotFound"  # as A1111 without --api-server-stop


# -- the caller's own job ------------------------------------------------------------------------
def start_job(server, key: str, job_id: str, steps: int = SLOW_STEPS):
    """A slow job of ``key`` through another dialect (OctoAI): /progress is about the caller's jobs, any dialect."""
    pool = ThreadPoolExecutor(1)
    return pool.submit(httpx.post, f"{server.base}/generate/sd", timeout=300,
                       headers={"Authorization": f"Bearer {key}", "X-Job-Id": job_id},
                       json={"prompt": "a cat", "width": 64, "height": 64, "steps": steps})


def internal_progress(server, key: str, task: str, id_live_preview: int = -1) -> dict:
    r = httpx.post(f"{server.base}/internal/progress", auth=("", key),
                   json={"id_task": task, "id_live_preview": id_live_preview, "live_preview": True})
    assert r.status_code == 200
    return r.json()


def wait_for(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_idle_progress(mine):
    p = mine.get_progress()
    assert p["progress"] == 0 and p["eta_relative"] == 0 and p["state"]["job_count"] == 0
    assert p["current_image"] is None
    mine.util_wait_for_ready(check_interval=0.1)  # returns at once


def test_progress_and_interrupt_of_the_callers_job(server, mine, theirs):
    done = start_job(server, server.key, "watched-1")
    p = wait_for(lambda: (r := mine.get_progress())["state"]["sampling_step"] >= 3 and r["current_image"] and r)
    assert p["state"]["job_count"] == 1 and p["state"]["job"] == "watched-1"
    assert 0 < p["progress"] < 1 and p["state"]["sampling_steps"] == SLOW_STEPS and p["eta_relative"] > 0
    assert Image.open(io.BytesIO(base64.b64decode(p["current_image"]))).format == "PNG"
    assert mine.get_progress()["current_image"] is not None
    skipped = httpx.get(f"{server.base}/sdapi/v1/progress", params={"skip_current_image": "true"},
                        auth=("", server.key)).json()
    assert skipped["current_image"] is None and skipped["state"]["job_count"] == 1
    named = httpx.get(f"{server.base}/sdapi/v1/progress", params={"id_task": "watched-1"},
                      auth=("", server.key)).json()
    assert named["state"]["job"] == "watched-1" and named["progress"] > 0
    # Another key sees nothing of it and cannot stop it.
    assert theirs.get_progress()["state"]["job_count"] == 0
    hidden = httpx.get(f"{server.base}/sdapi/v1/progress", params={"id_task": "watched-1"},
                       auth=("", server.other)).json()  # as a job not admitted yet: nothing of it shows
    assert (hidden["progress"], hidden["state"]["job_count"], hidden["textinfo"]) == (0.0, 0, "Waiting...")
    internal = internal_progress(server, server.key, "watched-1")
    assert internal["active"] and not internal["completed"] and internal["progress"] > 0
    assert internal["live_preview"].startswith("data:image/png;base64,") and internal["id_live_preview"] >= 0
    again = internal_progress(server, server.key, "watched-1", id_live_preview=internal["id_live_preview"])
    assert again["live_preview"] is None or again["id_live_preview"] != internal["id_live_preview"]
    assert internal_progress(server, server.other, "watched-1") == {
        "active": False, "queued": False, "completed": False, "progress": None, "eta": None,
        "live_preview": None, "id_live_preview": -1, "textinfo": "Waiting..."}
    assert theirs.interrupt() == {}
    time.sleep(0.3)
    assert not done.done()
    assert mine.interrupt() == {}
    answer = done.result(timeout=60)
    assert answer.status_code >= 400  # the job was stopped, not finished
    wait_for(lambda: mine.get_progress()["state"]["job_count"] == 0, timeout=10)
    ended = httpx.get(f"{server.base}/sdapi/v1/progress", params={"id_task": "watched-1"},
                      auth=("", server.key)).json()
    assert ended["textinfo"] == "Cancelled" and ended["state"]["job_count"] == 0
    finished = internal_progress(server, server.key, "watched-1")
    assert finished["completed"] and not finished["active"] and finished["textinfo"] == "Cancelled"
    jobs = httpx.get(f"{server.base}/v1/jobs/watched-1", headers={"Authorization": f"Bearer {server.key}"})
    assert jobs.json()["status"] == "cancelled"


def test_skip_ends_a_one_image_job(server, mine):
    done = start_job(server, server.key, "skipped-1")
    wait_for(lambda: mine.get_progress()["state"]["sampling_step"] >= 1)
    assert mine.skip() is None
    assert done.result(timeout=60).status_code >= 400
    jobs = httpx.get(f"{server.base}/v1/jobs/skipped-1", headers={"Authorization": f"Bearer {server.key}"})
    assert jobs.json()["status"] == "cancelled"


# -- with A1111 generation (txt2img) -----------------------------------------------------------
SMALL = dict(width=64, height=64, steps=3)


def test_two_clients_switch_models_concurrently(server):
    """A1111's worst case: clients switching the global model under each other. Here each key's
    switch is its own, even with both switching and generating at the same time."""
    clients = {"tiny-sd": api(server), "tiny-sdxl": api(server, server.other)}
    barrier = threading.Barrier(2)

    def run(model: str) -> list[str]:
        client, seen = clients[model], []
        for i in range(3):
            client.util_set_model(model)
            barrier.wait(timeout=60)  # both have switched before either generates
            seen.append(client.txt2img(prompt=f"a hill {i}", seed=i, **SMALL).info["sd_model_name"])
            barrier.wait(timeout=120)
        return seen

    with ThreadPoolExecutor(2) as pool:
        results = {m: pool.submit(run, m) for m in clients}
        assert {m: f.result(timeout=300) for m, f in results.items()} == {
            "tiny-sd": ["tiny-sd"] * 3, "tiny-sdxl": ["tiny-sdxl"] * 3}
    clients["tiny-sdxl"].util_set_model("tiny-sd")


def test_png_info_of_a_txt2img_answer(mine):
    out = mine.txt2img(prompt="a red (barn:1.2)", negative_prompt="fog", seed=7, cfg_scale=5, **SMALL)
    parsed = mine.png_info(out.image).json
    assert parsed["info"] == out.info["infotexts"][0]
    p = parsed["parameters"]
    assert (p["Prompt"], p["Negative prompt"], p["Seed"], p["Steps"], p["Size-1"], p["Size-2"]) == (
        "a red (barn:1.2)", "fog", "7", "3", "64", "64")


def test_progress_and_interrupt_of_a_webuiapi_txt2img(server, mine, theirs):
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(mine.txt2img, prompt="a cat", seed=3, width=64, height=64, steps=SLOW_STEPS)
        p = wait_for(lambda: (r := mine.get_progress())["state"]["sampling_step"] >= 2 and r)
        assert p["state"]["job_count"] == 1 and 0 < p["progress"] < 1
        assert theirs.get_progress()["state"]["job_count"] == 0
        mine.interrupt()
        with pytest.raises(RuntimeError):  # stopped: no images (A1111 would send the unfinished ones)
            done.result(timeout=60)
    wait_for(lambda: mine.get_progress()["state"]["job_count"] == 0, timeout=10)


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_png_info_reads_the_exif_of_jpeg_and_webp_answers(server, fmt):
    """webuiapi's png_info re-encodes as PNG (the EXIF is lost), so the answer's own bytes go as they came."""
    auth = ("", server.key)
    body = {"prompt": "a blue boat", "seed": 5, **SMALL, "override_settings": {"samples_format": fmt}}
    answer = httpx.post(f"{server.base}/sdapi/v1/txt2img", auth=auth, json=body, timeout=120).json()
    info = httpx.post(f"{server.base}/sdapi/v1/png-info", auth=auth, json={"image": answer["images"][0]}).json()
    assert info["info"] == json.loads(answer["info"])["infotexts"][0]
    assert info["parameters"]["Prompt"] == "a blue boat" and info["parameters"]["Seed"] == "5"
