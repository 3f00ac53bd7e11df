"""Golden JSON for the pure OctoAI translations (wire -> GenerationRequest, results and assets -> wire)."""

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pixelserve.db.models_assets import AssetRecord
from pixelserve.dialects.octoai import translate
from pixelserve.dialects.octoai.protocol import CreateAssetRequest, ImageGenerationRequest
from pixelserve.service.asset_refs import ResolvedAsset
from pixelserve.service.pipeline import ServedImage, ServiceResult
from tests.api.octoai.helpers import b64_image

GOLDEN = Path(__file__).parent / "golden"
ASSETS = {
    ("checkpoint", "octoai:RealVisXL"): ResolvedAsset("RealVisXL", "checkpoint", "sdxl", None, model_id="xl-real"),
    ("checkpoint", "my-ckpt"): ResolvedAsset("my-ckpt", "checkpoint", "sdxl", "/assets/c.safetensors"),
    ("vae", "my-vae"): ResolvedAsset("my-vae", "vae", "sdxl", "/assets/v.safetensors"),
    ("loras", "octoai:crayon"): ResolvedAsset("crayon", "lora", "sdxl", "/assets/l1.safetensors"),
    ("loras", "mine"): ResolvedAsset("mine", "lora", "sdxl", "/assets/l2.safetensors"),
    ("textual_inversions", "octoai:NegativeXL"): ResolvedAsset("NegativeXL", "textual_inversion", "sdxl",
                                                               "/assets/t.safetensors", trigger_words=("negXL",)),
    ("textual_inversions", "ti2"): ResolvedAsset("ti2", "textual_inversion", "sdxl", "/assets/t2.safetensors"),
    ("controlnet", "octoai:canny_sdxl"): ResolvedAsset("canny_sdxl", "controlnet", "sdxl", "/models/cn",
                                                       preprocess="canny"),
}


def images(wire: dict) -> dict:
    """The case's image fields filled with small real images."""
    out = dict(wire)
    for name in ("init_image", "controlnet_image"):
        if out.get(name) == "<image>":
            out[name] = b64_image((80, 80))
    if out.get("mask_image") == "<mask>":
        out["mask_image"] = b64_image((80, 80), colour=255, mode="L")
    if out.get("transfer_images"):
        out["transfer_images"] = {k: [b64_image()] * len(v) for k, v in out["transfer_images"].items()}
    return out


@pytest.mark.parametrize("name", ["sd_minimal", "sdxl_full", "controlnet_inpaint"])
def test_wire_to_request(name):
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    body = ImageGenerationRequest.model_validate(images(case["wire"]))
    engine = translate.EngineTarget(**case["engine"])
    req = translate.request_from_wire(body, engine, ASSETS, max_pixels=10**7, extra_sizes=((64, 64),))
    assert req.describe() == case["internal"]
    assert asdict(translate.output_options(body)) == case["output"]
    for field in ("init_image", "mask_image"):
        if getattr(req, field) is not None:
            assert getattr(req, field).size == (req.width, req.height)  # resized to the requested size
    if req.controlnet is not None:
        assert req.controlnet.image.size == (req.width, req.height)


def test_result_to_wire():
    case = json.loads((GOLDEN / "response.json").read_text())
    result = ServiceResult(job_id="j", model="m", timings_ms={}, images=[
        ServedImage(f"i{n}", im["seed"], im["data"].encode(), "image/jpeg", "k", im["nsfw_score"])
        for n, im in enumerate(case["images"])])
    assert translate.result_to_wire(result, 1234.5678, nsfw_threshold=0.5) == case["wire"]


def test_asset_wire():
    case = json.loads((GOLDEN / "asset.json").read_text())
    fields = translate.asset_from_wire(CreateAssetRequest.model_validate(case["create"]))
    assert fields == case["fields"]
    row = AssetRecord(id="asset_" + "0" * 32, scope="key:7", name=case["create"]["name"], status="ready",
                      status_details="", size_bytes=1234, origin="upload",
                      created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), **fields)
    assert translate.asset_to_wire(row) == case["asset"]
    public = AssetRecord(id="asset_" + "1" * 32, scope="public", name="canny_sdxl", kind="controlnet", family="sdxl",
                         description="d", meta={}, status="ready", status_details="", size_bytes=0, origin="config",
                         created_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert translate.asset_to_wire(public) == case["public_controlnet"]
