"""OctoAI's own published SDK (octoai 1.11.0) against a live pixelserve: the requests it builds are
accepted and every response parses with its pydantic models (the exact shapes its clients read)."""

import pickle
import time
from types import SimpleNamespace

import pytest
from octoai import uploading_asset_library
from octoai.asset_library.types import Data_Lora, ListAssetsResponse
from octoai.client import OctoAI
from octoai.core.api_error import ApiError
from octoai.core.pydantic_utilities import pydantic_v1
from octoai.environment import OctoAIEnvironment
from octoai.image_gen.errors import UnprocessableEntityError
from octoai.image_gen.types import ImageGenerationResponse

from pixelserve.app import create_app
from tests.api.octoai.assets import tiny_files
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import b64_image, decode
from tests.conftest import make_settings
from tests.security.live import served


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("sdk"), tiny_cache, octoai_extra_sizes=EXTRA_SIZES))
    with served(app, "sdk") as server:
        yield server


@pytest.fixture
def client(server):
    env = OctoAIEnvironment(default=server.base, image_gen=server.base, text_gen=server.base)
    return OctoAI(api_key=server.key, environment=env, timeout=120)


@pytest.fixture
def no_polling_sleep(monkeypatch):
    """The SDK waits 10 s between status polls; our status is final when complete-upload answers."""
    monkeypatch.setattr(uploading_asset_library, "time", SimpleNamespace(monotonic=time.monotonic, sleep=lambda s: None))


def test_generate_sdxl_parses(client):
    out = client.image_gen.generate_sdxl(prompt="a lighthouse", prompt2="an old lighthouse", width=64, height=64,
                                         steps=2, num_images=2, seed=[7, None], sampler="K_EULER",
                                         style_preset="Watercolor", image_encoding="png", cfg_scale=7.5)
    assert isinstance(out, ImageGenerationResponse) and out.prediction_time_ms > 0
    assert [im.seed for im in out.images][0] == 7 and len(out.images) == 2
    assert all(im.removed_for_safety is False and decode(im.image_b64).size == (64, 64) for im in out.images)


def test_generate_controlnet_sdxl_with_the_doc_sample_asset(client):
    out = client.image_gen.generate_controlnet_sdxl(prompt="a tiger astronaut", controlnet="octoai:canny_sdxl",
                                                    controlnet_image=b64_image(), controlnet_preprocess=False,
                                                    width=64, height=64, steps=2, seed=768072361)
    assert out.images[0].seed == 768072361 and decode(out.images[0].image_b64).format == "JPEG"


@pytest.mark.parametrize("engine,extra", [("sd", {}), ("controlnet-sd15", {"controlnet": "octoai:canny_sd15",
                                                                            "controlnet_image": b64_image()})])
def test_engines_without_an_sdk_method(client, server, engine, extra):
    # SDK 1.11 has no generate_sd / generate_controlnet_sd15: the same request path its generate_* use.
    wrapper = client._client_wrapper
    r = wrapper.httpx_client.request(f"generate/{engine}", base_url=wrapper.get_environment().image_gen,
                                     method="POST", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 2,
                                                          "seed": 3, **extra})
    assert r.status_code == 200, r.text
    out = pydantic_v1.parse_obj_as(ImageGenerationResponse, r.json())
    assert out.images[0].seed == 3 and out.images[0].image_b64


def test_validation_errors_parse_as_the_sdk_expects(client):
    with pytest.raises(UnprocessableEntityError) as e:
        client.image_gen.generate_sdxl(prompt="x", steps=0, width=64, height=64)
    assert [d.loc for d in e.value.body.detail] == [["body", "steps"]]
    with pytest.raises(UnprocessableEntityError) as e:
        client.image_gen.generate_sdxl(prompt="x", width=512, height=512)
    assert e.value.body.detail[0].loc == ["body", "width"]


def test_bad_token_is_401(server):
    env = OctoAIEnvironment(default=server.base, image_gen=server.base, text_gen=server.base)
    with pytest.raises(ApiError) as e:
        OctoAI(api_key="ps_not_a_key", environment=env).image_gen.generate_sdxl(prompt="x")
    assert e.value.status_code == 401


def test_asset_library_through_the_sdk(client, tmp_path, no_polling_sleep):
    lora = tiny_files(tmp_path)[("lora", "sdxl")]
    data = Data_Lora(engine="image/stable-diffusion-xl-v1-0", file_format="safetensors", trigger_words=["sdkstyle"])
    asset = client.asset_library.create_from_file(file=str(lora), data=data, name="sdk-lora", description="from the SDK")
    assert asset.status == "ready" and asset.name == "sdk-lora" and asset.size_bytes == lora.stat().st_size
    assert isinstance(asset.data, Data_Lora) and asset.data.trigger_words == ["sdkstyle"]
    out = client.image_gen.generate_sdxl(prompt="sdkstyle cat", loras={"sdk-lora": 0.5}, width=64, height=64, steps=2)
    assert out.images[0].image_b64
    listed = client.asset_library.list(is_public=True, limit=100)
    assert isinstance(listed, ListAssetsResponse)
    assert {"canny_sdxl", "canny_sd15", "RealVisXL"} <= {a.name for a in listed.data}
    assert client.asset_library.get("octoai/RealVisXL").asset.is_public is True
    mine = client.asset_library.list(name="sdk-lora")
    assert mine.total == 1 and mine.data[0].id == asset.id
    deleted = client.asset_library.delete(asset.id)
    assert deleted.id == asset.id and client.asset_library.list(name="sdk-lora").total == 0


def test_a_pickle_upload_never_becomes_ready(client, tmp_path, no_polling_sleep):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"x": 1}))
    data = Data_Lora(engine="image/stable-diffusion-v1-5", file_format="safetensors")
    with pytest.raises(uploading_asset_library.AssetNotReady, match="rejected"):
        client.asset_library.create_from_file(file=str(bad), data=data, name="evil")
