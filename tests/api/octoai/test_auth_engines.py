"""Bearer tokens against the API-key store; engine ids; the response's exact shape."""

import pytest

from pixelserve.db.crud.keys import create_key, revoke_key
from tests.api.octoai.helpers import decode, small


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ps_wrong", "KakaoAK {key}", "Token {key}"])
def test_bad_or_missing_token_is_401(octo_client, octo_key, header):
    headers = {} if header is None else {"Authorization": header.format(key=octo_key)}
    r = octo_client.post("/generate/sd", json=small(), headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert set(r.json()) == {"detail"}


def test_auth_comes_before_the_body_check(octo_client):
    r = octo_client.post("/generate/sd", json={"steps": -1}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_revoked_token_is_401(octo_client):
    with octo_client.app.state.sessions() as s:
        info, key = create_key(s, "to revoke", octo_client.app.state.auth.secret)
        revoke_key(s, info.id)
    assert octo_client.post("/generate/sd", json=small(), headers={"Authorization": f"Bearer {key}"}).status_code == 401


@pytest.mark.parametrize("engine", ["sd3", "flux-dev", "SDXL", "controlnet", "sdxl.json"])
def test_unknown_engine_is_404_even_with_a_bad_body(octo, engine):
    r = octo({"steps": -1}, engine=engine)
    assert r.status_code == 404 and "unknown engine" in r.json()["detail"]


def test_response_shape_seeds_and_encodings(octo):
    r = octo(small(num_images=2, seed=[11, None], image_encoding="png"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["images", "prediction_time_ms"] and body["prediction_time_ms"] > 0
    first, second = body["images"]
    assert list(first) == ["image_b64", "seed", "removed_for_safety", "safety_score"]
    assert first["seed"] == 11 and 0 <= second["seed"] < 2**32
    assert first["removed_for_safety"] is False and 0 <= first["safety_score"] <= 1
    image = decode(first["image_b64"])
    assert image.format == "PNG" and image.size == (64, 64)
    jpeg = octo(small(seed=11)).json()["images"][0]
    assert decode(jpeg["image_b64"]).format == "JPEG" and jpeg["seed"] == 11  # jpeg is the default


def test_same_seed_same_image_other_seed_other_image(octo):
    a, b = (octo(small(seed=3, image_encoding="png")).json()["images"][0]["image_b64"] for _ in range(2))
    c = octo(small(seed=4, image_encoding="png")).json()["images"][0]["image_b64"]
    assert a == b and a != c


def test_nsfw_removal_nulls_the_image(octo, octo_client, monkeypatch):
    monkeypatch.setattr(octo_client.app.state.settings, "nsfw_threshold", 0.0)  # every image counts as NSFW
    image = octo(small(seed=1)).json()["images"][0]
    assert image["removed_for_safety"] is True and image["image_b64"] is None and image["safety_score"] is not None


def test_log_prompt_false_keeps_the_prompt_out_of_the_record(octo, octo_client):
    from sqlalchemy import select

    from pixelserve.db.models import Job

    for log_prompt in (False, True):
        assert octo(small(prompt=f"secret {log_prompt}", log_prompt=log_prompt)).status_code == 200
    with octo_client.app.state.sessions() as s:
        prompts = [j.request["prompt"] for j in s.scalars(select(Job).where(Job.dialect == "octoai"))]
    assert "secret True" in prompts and "secret False" not in prompts and "[not logged]" in prompts


def test_the_sdxl_engine_and_img2img_and_inpainting(octo):
    from tests.api.octoai.helpers import b64_image

    for body, engine in ((small(prompt_2="a hat", negative_prompt_2="blur", style_preset="anime"), "sdxl"),
                         (small(init_image=b64_image((100, 80)), strength=0.5), "sd"),
                         (small(init_image=b64_image(), mask_image=b64_image(colour=255, mode="L")), "sdxl"),
                         (small(init_image=b64_image((32, 32), colour=(9, 9, 9, 0), mode="RGBA"),
                                outpainting=True), "sd")):
        r = octo(body, engine=engine)
        assert r.status_code == 200, r.text
        assert decode(r.json()["images"][0]["image_b64"]).size == (64, 64)


@pytest.mark.parametrize("error,status,retry", [("Overloaded", 503, "1"), ("NotReady", 503, "5"),
                                                ("EngineFailure", 500, None)])
def test_engine_refusals_keep_their_status_and_retry_after(octo, octo_client, monkeypatch, error, status, retry):
    from pixelserve import errors

    async def refuse(*args, **kwargs):
        raise getattr(errors, error)("busy")

    monkeypatch.setattr(octo_client.app.state.engine, "submit", refuse)
    r = octo(small())
    assert r.status_code == status and r.json() == {"detail": "busy"}
    assert r.headers.get("retry-after") == retry
