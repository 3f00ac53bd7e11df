"""A reference image on a model with an IP-Adapter is an image prompt (else the start of an img2img)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.engine.demo import tiny, tiny_adapters
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, upload
from tests.conftest import make_settings, wait_ready


@pytest.fixture(scope="module")
def ip_client(tmp_path_factory, tiny_cache):
    data = tmp_path_factory.mktemp("studio-ip")
    adapter = tiny_adapters.ensure_tiny_ip_adapter("sd", data / "adapters")
    config = data / "models.toml"
    config.write_text(f'[models.sd-ip]\nfamily = "sd"\npath = "{tiny.ensure_tiny_model("sd", tiny_cache / "tiny")}"\n'
                      f'ip_adapter = "{adapter / tiny_adapters.IP_ADAPTER_FILE}"\n'
                      f'image_encoder = "{adapter / tiny_adapters.IMAGE_ENCODER_FOLDER}"\n')
    settings = make_settings(data, tiny_cache, models_config=config, **SMALL_SETTINGS)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def test_reference_image_is_an_image_prompt_when_the_model_has_an_ip_adapter(ip_client):
    seen = []
    engine = ip_client.app.state.engine
    submit = engine.submit

    async def spy(job_id, request, on_progress=None):
        seen.append(request)
        return await submit(job_id, request, on_progress)

    engine.submit = spy
    try:
        _, key = new_key(ip_client.app)
        h = {"X-Api-Key": key}
        for async_ in (False, True):  # the async job rebuilds it from the stored plan
            r = ip_client.post(CREATE, headers=h, json={"prompt": "a cat", "ratio": "1:1", "sample": 1,
                                                        "image": upload(ip_client, h), "async": async_})
            assert r.status_code == 200, r.text
            image_id = r.json()["images"][0]["imageId"]
            for _ in range(600):
                record = ip_client.get(f"/api/images/{image_id}", headers=h).json()["images"][0]
                if record["generationStatus"] in ("COMPLETED", "FAILED"):
                    break
                time.sleep(0.1)
            assert record["generationStatus"] == "COMPLETED", record
    finally:
        engine.submit = submit
    assert len(seen) == 2
    for request in seen:
        assert request.task == "txt2img" and request.init_image is None
        assert request.image_prompt is not None and request.image_prompt.scale == 0.6
        assert request.image_prompt.images[0].size == (64, 64)
