"""The official ``openai`` SDK (3.51.0, pinned in the test extras) against a live pixelserve on
127.0.0.1: the requests it builds are accepted, its answers parse, its errors raise its own classes."""

import base64
import io
import time

import httpx
import numpy as np
import openai
import pytest
from PIL import Image, ImageDraw

from sqlalchemy import select

from pixelserve.app import create_app
from pixelserve.db.models import Job
from tests.conftest import make_settings
from tests.security.live import served

BOX = (16, 16, 47, 39)  # the area the mask opens for editing (inclusive corners)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("openai"), tiny_cache))
    with served(app, "sdk") as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.key, timeout=120, max_retries=0)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def picture(size=(64, 64)) -> Image.Image:
    img = Image.new("RGB", size, (40, 90, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(230, 200, 40))
    d.line((0, 0, size[0], size[1]), fill=(255, 255, 255), width=3)
    return img


def opened_mask(size=(64, 64), box=BOX) -> Image.Image:
    """Opaque everywhere except a fully transparent box: OpenAI edits the transparent area."""
    m = Image.new("RGBA", size, (0, 0, 0, 255))
    ImageDraw.Draw(m).rectangle(box, fill=(0, 0, 0, 0))
    return m


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_generate_b64_two_images(client):
    out = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk", n=2, size="64x64",
                                 quality="low", output_format="webp", output_compression=80)
    assert len(out.data) == 2 and out.created > 0
    assert all(decoded(im.b64_json).size == (64, 64) and decoded(im.b64_json).format == "WEBP" for im in out.data)
    assert all(im.url is None and im.revised_prompt is None for im in out.data)
    assert out.output_format == "webp" and out.size == "64x64" and out.quality == "low"
    assert out.usage.input_tokens == 6 and out.usage.total_tokens == 6  # 4 words + start and end tokens


def test_generate_url_two_images_other_size(client, server):
    raw = client.images.with_raw_response.generate(
        model="dall-e-2", prompt="a red bicycle", n=2, size="96x64", quality="low", response_format="url",
        style="natural", user="user-42", extra_headers={"X-Job-Id": "openai-user-42"})
    out = raw.parse()
    with server.app.state.sessions() as s:  # user goes on the job record
        job = s.scalars(select(Job).where(Job.client_id == raw.headers["X-Job-Id"])).one()
        assert job.request["user"] == "user-42" and job.request["openai_model"] == "dall-e-2"
        assert job.request["guidance_scale"] == 5.0 and job.dialect == "openai"  # style natural
        assert raw.headers["x-request-id"] == job.id  # the SDK's request_id names the job
    assert len(out.data) == 2 and all(im.b64_json is None for im in out.data)
    for im in out.data:
        assert im.url.startswith(server.base + "/v1/images/")
        expires = int(httpx.URL(im.url).params["expires"])
        assert 3500 < expires - time.time() <= 3600  # OpenAI's 60 minutes, not the server's default TTL
        r = httpx.get(im.url)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (96, 64)


def test_gpt_image_answers_b64_without_response_format_and_dall_e_url(client):
    assert client.images.generate(model="gpt-image-1.5", prompt="a cat", size="64x64",
                                  quality="low").data[0].b64_json
    assert client.images.generate(model="dall-e-3", prompt="a cat", size="64x64", quality="low").data[0].url


def test_edit_with_mask_keeps_unmasked_pixels(client):
    out = client.images.edit(model="gpt-image-1", image=("in.png", png(picture()), "image/png"),
                             mask=png(opened_mask()), prompt="a red ball", n=2, quality="low")
    src = pixels(picture())
    outside = np.ones(src.shape[:2], bool)
    outside[BOX[1]:BOX[3] + 1, BOX[0]:BOX[2] + 1] = False
    assert len(out.data) == 2
    for im in out.data:
        got = pixels(decoded(im.b64_json))
        assert got.shape == src.shape
        assert np.array_equal(got[outside], src[outside])  # untouched, byte for byte
        assert np.abs(got[~outside] - src[~outside]).mean() > 5  # and the transparent box was repainted


def test_edit_with_image_list_and_raw_bytes(client):
    # A list goes out as image[]; raw bytes as a part named "upload", application/octet-stream.
    out = client.images.edit(model="gpt-image-1", image=[png(picture((72, 64)))], prompt="a boat",
                             quality="low", size="64x64", input_fidelity="high")
    assert decoded(out.data[0].b64_json).size == (64, 64) and out.size == "64x64"


def test_variation(client):
    out = client.images.create_variation(image=png(picture((80, 64))), n=2, size="64x64",
                                         response_format="b64_json")
    assert len(out.data) == 2 and all(decoded(im.b64_json).size == (64, 64) for im in out.data)


@pytest.mark.parametrize("kwargs,param", [
    ({"size": "100x100"}, "size"),
    ({"size": "64x64", "background": "transparent"}, "background"),
    ({"size": "64x64", "n": 11}, "n"),
    ({"size": "64x64", "quality": "ultra"}, "quality"),
    ({"size": "100x100", "stream": True}, "size"),  # refused before the stream starts: the usual JSON error
])
def test_bad_requests_raise_bad_request_error_with_param(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="gpt-image-1", prompt="a cat", **kwargs)
    assert e.value.param == param and e.value.type == "invalid_request_error"
    assert e.value.response.headers["x-should-retry"] == "false"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.images.generate(model="imagen-9", prompt="a cat", size="64x64")
    assert e.value.param == "model" and e.value.code == "model_not_found"


def test_bad_key_is_authentication_error(server):
    bad = openai.OpenAI(base_url=f"{server.base}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.images.generate(model="gpt-image-1", prompt="a cat", size="64x64")


def test_edit_mask_of_another_size_names_mask(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=png(picture()), mask=png(opened_mask((32, 32))), prompt="x")
    assert e.value.param == "mask"


def test_models_list_and_base_url_without_v1(client, server):
    ids = [m.id for m in client.models.list()]
    assert {"tiny-sd", "tiny-sdxl", "dall-e-3", "gpt-image-1"} <= set(ids)
    plain = openai.OpenAI(base_url=server.base, api_key=server.key, max_retries=0)
    assert plain.images.generate(model="tiny-sd", prompt="a cat", size="64x64", quality="low",
                                 response_format="b64_json").data[0].b64_json


def test_every_optional_field_accepts_null(server):
    fields = ("model", "n", "quality", "style", "response_format", "output_format", "output_compression",
              "background", "moderation", "stream", "partial_images", "user")
    body = {"prompt": "a cat", "size": "64x64", **dict.fromkeys(fields)}
    r = httpx.post(f"{server.base}/v1/images/generations", json=body, timeout=120,
                   headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["url"]  # model null: dall-e-2's default, url


def test_a_streamed_generation_sends_partial_images_then_the_completed_one(client):
    # quality low: 12 steps; the server's default preview every 5 steps gives previews at steps 5 and 10.
    events = list(client.images.generate(model="gpt-image-1", prompt="a cat", size="64x64", quality="low",
                                         stream=True, partial_images=2))
    partial = [e for e in events if e.type == "image_generation.partial_image"]
    assert [e.type for e in events] == ["image_generation.partial_image"] * len(partial) + ["image_generation.completed"]
    # Only a running job's latest preview is kept: a reader that falls behind gets fewer, never more.
    assert 1 <= len(partial) <= 2 and [e.partial_image_index for e in partial] == list(range(len(partial)))
    assert all(decoded(e.b64_json).format == "JPEG" and decoded(e.b64_json).size == (64, 64) for e in partial)
    done = events[-1]
    assert decoded(done.b64_json).size == (64, 64) and done.size == "64x64" and done.usage.input_tokens > 0
    plain = list(client.images.generate(model="gpt-image-1", prompt="a cat", size="64x64", quality="low",
                                        stream=True))  # partial_images 0: the final image alone
    assert [e.type for e in plain] == ["image_generation.completed"]


def test_a_streamed_edit_ends_with_image_edit_completed(client):
    # multipart booleans arrive as "true"
    events = list(client.images.edit(image=png(picture()), prompt="x", stream=True, partial_images=1,
                                     quality="low", size="64x64"))
    assert events[-1].type == "image_edit.completed" and decoded(events[-1].b64_json).size == (64, 64)
    assert all(e.type == "image_edit.partial_image" for e in events[:-1]) and len(events) <= 2
