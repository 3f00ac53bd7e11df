"""Golden JSON for the pure A1111 translations: the bodies real clients send (webuiapi's txt2img with all
its defaults, Open WebUI's few fields, a hires + styles + LoRA request) -> GenerationRequest
(``describe()``), and a result -> the wire answer's ``info`` and infotexts (job_timestamp left out).
``PIXELSERVE_WRITE_GOLDEN=1`` rewrites the files from the code (review the diff)."""

import json
import os
from pathlib import Path

import pytest

from pixelserve.dialects.a1111 import answer, translate
from pixelserve.dialects.a1111.protocol import Txt2ImgRequest
from pixelserve.service.pipeline import OutputOptions, ServedImage, ServiceResult

GOLDEN = Path(__file__).parent / "golden"
SD = translate.Target("tiny-sd", "sd", "tiny-sd", None)
WEBUIAPI_TXT2IMG = {  # webuiapi 0.9.17 txt2img(prompt="a cat", seed=7, width=64, height=64, steps=3)
    "enable_hr": False, "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 0, "hr_resize_x": 0,
    "hr_resize_y": 0, "hr_checkpoint_name": None, "hr_sampler_name": None, "hr_scheduler": None, "hr_prompt": "",
    "hr_negative_prompt": "", "denoising_strength": 0.7, "firstphase_width": 0, "firstphase_height": 0,
    "prompt": "a cat", "styles": [], "seed": 7, "subseed": -1, "subseed_strength": 0.0, "seed_resize_from_h": 0,
    "seed_resize_from_w": 0, "batch_size": 1, "n_iter": 1, "steps": 3, "cfg_scale": 7.0, "width": 64, "height": 64,
    "restore_faces": False, "tiling": False, "do_not_save_samples": False, "do_not_save_grid": False,
    "negative_prompt": "", "eta": 1.0, "s_churn": 0, "s_tmax": 0, "s_tmin": 0, "s_noise": 1, "override_settings": {},
    "override_settings_restore_afterwards": True, "sampler_name": "Euler a", "scheduler": "automatic",
    "sampler_index": "Euler a", "script_name": None, "script_args": [], "send_images": True, "save_images": False,
    "alwayson_scripts": {}}
CASES = {
    "webuiapi_txt2img": (WEBUIAPI_TXT2IMG, {}),
    "open_webui": ({"prompt": "a lighthouse", "batch_size": 2, "width": 64, "height": 64, "steps": 4,
                    "negative_prompt": "fog", "cfg_scale": 5, "sampler_name": "DPM++ 2M", "scheduler": "Karras",
                    "seed": 1234}, {}),  # Open WebUI: an admin-set extra parameter
    "hires_styles_lora": ({**WEBUIAPI_TXT2IMG, "prompt": "a (cat:1.2) <lora:ink:0.6> BREAK a hat", "styles": ["noir"],
                           "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 4, "subseed": 100,
                           "subseed_strength": 0.25, "batch_size": 2, "restore_faces": True, "tiling": True,
                           "override_settings": {"CLIP_stop_at_last_layers": 2, "samples_format": "webp"}},
                          {"noir": ("{prompt}, film noir", "colour")}),
}


def result(plan: translate.Plan) -> ServiceResult:
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                        "53de0000000c4944415478da63f8ffff3f0005fe02fea7a65e9b0000000049454e44ae426082")
    images = [ServedImage(f"im{i}", seed, png, "image/png", f"job/im{i}.png")
              for i, seed in enumerate(plan.request.seeds)]
    return ServiceResult("job", plan.request.model, images, {})


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    body, styles = CASES[name]
    plan = translate.txt2img_to_request(Txt2ImgRequest.model_validate(body), SD, lambda n: f"/loras/{n}.safetensors",
                                        styles=styles)
    assert plan.output == OutputOptions(format="png")
    wire = answer.result_to_wire(plan, SD, result(plan))
    info = json.loads(wire["info"])
    del info["job_timestamp"]
    got = {"internal": plan.request.describe(), "format": plan.fmt, "info": info,
           "parameters_keys": sorted(wire["parameters"]), "images": len(wire["images"])}
    got = json.loads(json.dumps(got))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PIXELSERVE_WRITE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())
