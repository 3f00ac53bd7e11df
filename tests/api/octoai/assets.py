"""Helpers for the asset-library tests: tiny asset files and the create -> PUT -> complete protocol."""

from pathlib import Path

ENGINE = {"sd": "image/stable-diffusion-v1-5", "sdxl": "image/stable-diffusion-xl-v1-0",
          "controlnet-sd15": "image/controlnet-sd15", "controlnet-sdxl": "image/controlnet-sdxl"}


def tiny_files(folder: Path) -> dict:
    """(kind, family) -> a tiny asset file as a user would upload it."""
    from pixelserve.engine import tiny_adapters

    made = {}
    for family in ("sd", "sdxl"):
        for kind in ("lora", "textual_inversion", "vae"):
            made[(kind, family)] = tiny_adapters.ensure_tiny_adapter(kind, family, folder)
        made[("controlnet", family)] = (tiny_adapters.ensure_tiny_controlnet(family, folder)
                                        / "diffusion_pytorch_model.safetensors")
    return made


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


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
    put = client.put(created["transfer_api"]["put_url"], content=content)  # no Authorization: the URL is signed
    assert put.status_code == 200, put.text
    done = client.post(f"/v1/assets/{created['asset']['id']}/complete-upload", json={}, headers=auth(key))
    assert done.status_code == 200, done.text
    got = client.get(f"/v1/assets/{created['asset']['id']}", headers=auth(key))
    assert got.status_code == 200
    asset = got.json()["asset"]
    assert done.json() == {"error": asset["status_details"] or None}
    return asset
