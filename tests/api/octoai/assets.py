"""Helpers for the asset-library tests: tiny asset files and the create -> PUT -> complete protocol."""

from pathlib import Path

ENGINE = {"sd": "image/stable-diffusion-v1-5", "sdxl": "image/stable-diffusion-xl-v1-0",
          "controlnet-sd15": "image/controlnet-sd15", "controlnet-sdxl": "image/controlnet-sdxl"}


def tiny_files(folder: Path) -> dict:
    """(kind, family) -> a tiny asset file as a user would upload it."""
    from pixelserve.engine.demo import tiny_adapters

    made = {}
    for family in ("sd", "sdxl"):
        for kind in ("lora", "textual_inversion", "vae"):
            made[(kind, family)] = tiny_adapters.ensure_tiny_adapter(kind, family, folder)
        made[("controlnet", family)] = (tiny_adapters.ensure_tiny_controlnet(family, folder)
                                        / "diffusion_pytorch_model.safetensors")
    return made


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def put_file(client, url: str, content: bytes):
    """PUT to a signed URL: pixelserve's own (the test client serves it), or an S3 bucket's."""
    if url.startswith(str(client.base_url)):
        return client.put(url, content=content)
    import httpx

    return httpx.put(url, content=content)


def create(client, key, name, asset_type, engine, **data):
    body = {"asset_type": asset_type, "name": name, "description": f"test {name}",
            "data": {"engine": ENGINE[engine], "file_format": "safetensors", **data}}
    return client.post("/v1/assets", json=body, headers=auth(key))


def upload(client, key, name, asset_type, engine, content: bytes, **data) -> dict:
    """The whole protocol; returns the asset as GET answers it at the end."""
    r = create(client, key, name, asset_type, engine, **data)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["asset"]["status"] == "ready_to_upload"
    put = put_file(client, created["transfer_api"]["put_url"], content)  # no Authorization: the URL is signed
    assert put.status_code == 200, put.text
    done = client.post(f"/v1/assets/{created['asset']['id']}/complete-upload", json={}, headers=auth(key))
    assert done.status_code == 200, done.text
    got = client.get(f"/v1/assets/{created['asset']['id']}", headers=auth(key))
    assert got.status_code == 200
    asset = got.json()["asset"]
    assert done.json() == {"error": asset["status_details"] or None}
    return asset


def single_file_controlnet(family: str, tiny_cache: Path, out: Path) -> Path:
    """A ControlNet as one safetensors file, the architecture diffusers gives a ControlNet of the tiny
    model's UNet by default (what a user would upload; the tiny demo ControlNet's conditioning
    encoder is narrower than the default, so only its folder, with config.json, describes it)."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file

    from pixelserve.engine.demo.tiny import ensure_tiny_model

    torch.manual_seed(3)
    unet = UNet2DConditionModel.from_pretrained(ensure_tiny_model(family, tiny_cache / "tiny") / "unet")
    controlnet = ControlNetModel.from_unet(unet)
    with torch.no_grad():  # non-zero output convolutions, as if trained
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            module.weight.normal_(0.0, 0.5)
    file = out / f"controlnet-{family}.safetensors"
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, str(file))
    return file
