"""A1111 sampler/scheduler names -> core samplers (samplers.py), and the infotext written and read back."""

import pytest

from pixelserve.core.samplers import SAMPLERS as CORE
from pixelserve.dialects.a1111 import infotext, samplers
from pixelserve.errors import InvalidRequest


@pytest.mark.parametrize("name, scheduler, core, label, schedule", [
    (None, None, "euler", "Euler", "Automatic"),  # A1111's sampler_index default
    ("Euler a", "automatic", "euler_a", "Euler a", "Automatic"),  # what webuiapi sends
    ("DPM++ 2M Karras", None, "dpm++_2m_karras", "DPM++ 2M", "Automatic"),  # legacy label, karras is its default
    ("DPM++ 2M", "Karras", "dpm++_2m_karras", "DPM++ 2M", "Automatic"),  # by label
    ("DPM++ 2M", "uniform", "dpm++_2m", "DPM++ 2M", "Uniform"),
    ("k_euler", "karras", "euler_karras", "Euler", "Karras"),  # alias
    ("euler", "Exponential", "euler_exponential", "Euler", "Exponential"),  # case-insensitive
    ("DPM++ 2M SDE", "automatic", "dpm++_2m_sde_exponential", "DPM++ 2M SDE", "Automatic"),
    ("Euler Karras", "automatic", "euler_karras", "Euler", "Karras"),
    ("PLMS", None, "pndm", "PLMS", "Automatic"),
])
def test_resolve(name, scheduler, core, label, schedule):
    r = samplers.resolve(name, scheduler)
    assert (r.sampler, r.label, r.schedule) == (core, label, schedule)


@pytest.mark.parametrize("name, scheduler, field, words", [
    ("Nope", None, "sampler_name", "Sampler not found: 'Nope'"),
    ("DPM fast", None, "sampler_name", "not available on this server"),
    ("Euler a", "karras", "scheduler", "'Euler a' with the karras schedule"),
    ("Euler", "beta", "scheduler", "'beta' is not available"),
    ("Euler", "nonsense", "scheduler", "'nonsense' not found"),
])
def test_unknown_or_unbuilt_names_are_400_naming_the_field(name, scheduler, field, words):
    with pytest.raises(InvalidRequest) as e:
        samplers.resolve(name, scheduler)
    assert e.value.field == field and words in e.value.message


def test_lists_for_the_endpoints_name_only_built_samplers():
    listed = samplers.samplers_wire()
    assert listed[0] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    assert {"name": "Euler", "aliases": ["k_euler"], "options": {}} in listed
    assert [s["name"] for s in samplers.schedulers_wire()] == ["automatic", "uniform", "karras", "exponential"]
    for s in samplers.SAMPLERS:
        assert all(core in CORE for core in s.schedules.values())
        for sched in samplers.SCHEDULERS:  # every listed pair either resolves or is a 400, never a KeyError
            try:
                samplers.resolve(s.label, sched.name)
            except InvalidRequest:
                pass


def test_infotext_round_trip():
    text = infotext.create("a cat, (big:1.2)\nin two lines", "blurry, dark",
                           {"Steps": 20, "Sampler": "Euler a", "Schedule type": "Automatic", "CFG scale": "7",
                            "Seed": 123, "Size": "64x96", "Model": "demo:sd", "Version": None})
    assert text == ('a cat, (big:1.2)\nin two lines\nNegative prompt: blurry, dark\nSteps: 20, Sampler: Euler a, '
                    'Schedule type: Automatic, CFG scale: 7, Seed: 123, Size: 64x96, Model: "demo:sd"')
    parsed = infotext.parse(text)
    assert parsed["Prompt"] == "a cat, (big:1.2)\nin two lines" and parsed["Negative prompt"] == "blurry, dark"
    assert (parsed["Steps"], parsed["Seed"], parsed["Size-1"], parsed["Size-2"]) == ("20", "123", "64", "96")
    assert parsed["Model"] == "demo:sd" and parsed["Clip skip"] == "1" and "Version" not in parsed
    fields, settings = infotext.request_fields(text)
    assert fields == {"prompt": "a cat, (big:1.2)\nin two lines", "negative_prompt": "blurry, dark", "steps": 20,
                      "sampler_name": "Euler a", "scheduler": "Automatic", "cfg_scale": 7.0, "seed": 123,
                      "width": 64, "height": 96}
    assert settings == {"sd_model_checkpoint": "demo:sd"}


def test_infotext_without_parameters_line_is_all_prompt():
    parsed = infotext.parse("just a prompt\nNegative prompt: x")
    assert parsed["Prompt"] == "just a prompt" and parsed["Negative prompt"] == "x"
    assert "Steps" not in parsed and parsed["Schedule type"] == "Automatic"
    assert infotext.request_fields("")[0] == {"prompt": "", "negative_prompt": ""}


def test_restore_faces_and_hires_become_post_processing():
    from pixelserve.dialects.a1111 import translate
    from pixelserve.dialects.a1111.protocol import Txt2ImgRequest

    target = translate.Target("tiny-sd", "sd", "tiny-sd", None)
    body = Txt2ImgRequest(prompt="x", width=64, height=64, restore_faces=True, enable_hr=True, hr_scale=2,
                          hr_upscaler="Nearest", denoising_strength=0.4, hr_second_pass_steps=5)
    req = translate.txt2img_to_request(body, target, lambda name: name).request
    assert req.post.face_refine == translate.FACE_REFINE
    h = req.post.hires
    assert (h.width, h.height, h.strength, h.steps, h.resample, h.scheduler) == (128, 128, 0.4, 5, "nearest", None)
    plain = translate.txt2img_to_request(Txt2ImgRequest(prompt="x"), target, lambda name: name).request
    assert plain.post.face_refine is None and plain.post.hires is None
    assert (plain.width, plain.steps, plain.guidance_scale, plain.scheduler) == (512, 50, 7.0, "euler")


def test_init_image_urls_go_through_the_guarded_fetcher(tmp_path):
    import functools
    import http.server
    import threading

    from PIL import Image

    from pixelserve.core.fetch import FetchPolicy
    from pixelserve.dialects.a1111 import images

    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/a.png"
    try:
        with pytest.raises(InvalidRequest) as e:  # a local address: refused, as A1111's api_forbid_local_requests
            images.decode(url, "init_images.0", 10**6, 10**6)
        assert e.value.field == "init_images.0"
        got = images.decode(url, "init_images.0", 10**6, 10**6, FetchPolicy(allow_loopback=True))
        assert got.size == (8, 8) and got.getpixel((0, 0)) == (1, 2, 3)
    finally:
        httpd.shutdown()
