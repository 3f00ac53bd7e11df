"""POST /api/images/create: the spec's example, every field and header, the one-of rule."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from pixelserve.db.models_studio import CreditEntry, StudioImage
from tests.api.studio.helpers import CREATE, balances, decode, png_bytes, upload

SPEC_IMAGE_FIELDS = ["imageId", "createdAt", "generationStatus", "generationError", "resolution", "ownerId", "etc",
                     "bookmarked", "base64", "mimeType", "Bought", "Bookmarks", "Upscaled", "GenerationInfo"]
SPEC_INFO_FIELDS = ["originalPrompt", "super", "main", "variationId", "groupId", "blurReason"]


def image_count(client) -> int:
    with client.app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(StudioImage))


def ledger_count(client) -> int:
    with client.app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(CreditEntry).where(CreditEntry.kind == "reserve"))


def test_spec_curl_body_returns_four_images(studio_client):
    # The spec's reference "1/reference-1423131.png" belongs to owner 1 (this server's first key).
    studio_client.app.state.store.put("uploads/1/reference-1423131.png", png_bytes((96, 96)), "image/png")
    headers = {"Content-Type": "application/json", "X-Api-Key": studio_client.spec_key}
    body = ' { "prompt": "이미지 캡션 변형", "image": "1/reference-1423131.png", "ratio": "1:1" } '
    before = balances(studio_client, headers)
    started = time.perf_counter()
    r = studio_client.post(CREATE, content=body.encode(), headers=headers)
    elapsed = time.perf_counter() - started
    print(f"\nspec curl body on the tiny SD model (4 images, 64x64, 2 steps): {elapsed:.2f} s")
    assert r.status_code == 200, r.text
    out = r.json()
    assert list(out) == ["images", "defaultCredit", "dailyCredit", "monthlyCredit"]
    assert len(out["images"]) == 4
    assert out["dailyCredit"] == before["dailyCredit"] - 4  # tiny-sd costs 1 per image
    seeds = set()
    for i, im in enumerate(out["images"]):
        assert list(im)[:len(SPEC_IMAGE_FIELDS)] == SPEC_IMAGE_FIELDS
        assert im["generationStatus"] == "COMPLETED" and im["generationError"] is None
        assert im["ownerId"] == 1 and im["mimeType"] == "image/webp" and im["resolution"] == "64x64"
        picture = decode(im["base64"])
        assert picture.format == "WEBP" and picture.size == (64, 64)
        assert list(im["GenerationInfo"])[:len(SPEC_INFO_FIELDS)] == SPEC_INFO_FIELDS
        assert im["GenerationInfo"]["originalPrompt"] == "이미지 캡션 변형"
        assert im["GenerationInfo"]["variationId"] == i
        seeds.add(json.loads(im["etc"])["seed"])
        assert im["Bought"] == [] and im["Bookmarks"] == [] and im["Upscaled"] == [] and im["bookmarked"] is False
    assert len(seeds) == 4


def test_defaults_and_headers_are_recorded(studio_client, owner):
    _, h = owner
    path = upload(studio_client, h)
    r = studio_client.post(CREATE, headers={**h, "X-Type": "image-create"},
                           json={"prompt": "a cat", "image": path, "ratio": "square"})
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert len(images) == 4  # sample defaults to 4
    etc = json.loads(images[0]["etc"])
    assert etc["platform"] == "web" and etc["type"] == "image-create" and etc["ratio"] == "square"
    r = studio_client.post(CREATE, headers={**h, "X-Platform": "figma"},
                           json={"prompt": "a cat", "image": path, "ratio": "1:1", "sample": 1})
    assert json.loads(r.json()["images"][0]["etc"])["platform"] == "figma"


@pytest.mark.parametrize("ratio, size", [
    ("square", "64x64"), ("1:1", "64x64"), ("vertical", "64x88"), ("3:4", "64x88"),
    ("horizontal", "88x64"), ("4:3", "88x64"), ("9:16", "64x112"), ("16:9", "112x64"),
])
def test_every_ratio_maps_to_its_resolution(studio_client, owner, ratio, size):
    _, h = owner
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", "styleId": 1, "ratio": ratio, "sample": 1})
    assert r.status_code == 200, r.text
    [im] = r.json()["images"]
    assert im["resolution"] == size and decode(im["base64"]).size == tuple(int(v) for v in size.split("x"))


@pytest.mark.parametrize("sample", [1, 2])
def test_sample_sets_the_number_of_images_and_the_charge(studio_client, owner, sample):
    _, h = owner
    before = balances(studio_client, h)["dailyCredit"]
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": sample})
    assert len(r.json()["images"]) == sample
    assert r.json()["dailyCredit"] == before - sample


def test_prompt_of_exactly_1200_characters_is_accepted(studio_client, owner):
    _, h = owner
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a" * 1200, "styleId": 1, "ratio": "1:1", "sample": 1})
    assert r.status_code == 200, r.text


GOOD = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1}
NULL = object()  # sent as JSON null (None in a change means: leave the field out)


@pytest.mark.parametrize("change, field", [
    ({"prompt": "a" * 1201}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"ratio": "2:1"}, "ratio"),
    ({"ratio": None}, "ratio"),
    ({"sample": 3}, "sample"),
    ({"sample": 8}, "sample"),
    ({"sample": 0}, "sample"),
    ({"sample": "4"}, "sample"),
    ({"async": "yes"}, "async"),
    ({"async": 1}, "async"),
    ({"groupId": "g" * 201}, "groupId"),
    ({"image": 5}, "image"),
    ({"styleId": 0}, "styleId"),
    ({"styleId": 999}, "styleId"),
    ({"collectionId": None, "styleId": None}, "image, styleId, collectionId"),
    ({"image": "1/a.png"}, "image and styleId"),
    ({"collectionId": 3}, "styleId and collectionId"),
    ({"samples": 2}, "samples"),
    ({"sample": NULL}, "sample"),
    ({"async": NULL}, "async"),
    ({"groupId": 5}, "groupId"),
    ({"styleId": None, "image": "1/" + "a" * 299}, "image: String should have at most 300"),
    ({"styleId": "1"}, "styleId"),
    ({"styleId": 2**63}, "styleId"),
    ({"collectionId": 0}, "collectionId"),
    *[({name: "x" * 4001}, name) for name in ("randomPrompt", "initialPrompt", "enhancedPrompt", "captionPrompt",
                                              "captionTPrompt")],
    *[({name: 5}, name) for name in ("randomPrompt", "initialPrompt", "enhancedPrompt", "captionPrompt",
                                     "captionTPrompt")],
])
def test_bad_fields_are_400_naming_the_field_and_charge_nothing(studio_client, owner, change, field):
    _, h = owner
    before, images, reserves = balances(studio_client, h), image_count(studio_client), ledger_count(studio_client)
    body = {k: None if v is NULL else v for k, v in {**GOOD, **change}.items()
            if v is not None or k in ("prompt", "ratio")}
    if change.get("prompt", 0) is None:
        body.pop("prompt")
    if "ratio" in change and change["ratio"] is None:
        body.pop("ratio")
    r = studio_client.post(CREATE, headers=h, json=body)
    expected = 404 if change == {"styleId": 999} else 400
    assert r.status_code == expected, r.text
    err = r.json()
    assert set(err) >= {"statusCode", "message", "error"}
    assert err["statusCode"] == expected and err["error"] == ("Not Found" if expected == 404 else "Bad Request")
    assert field in err["message"]
    assert balances(studio_client, h) == before
    assert image_count(studio_client) == images and ledger_count(studio_client) == reserves


@pytest.mark.parametrize("headers, status, field", [
    ({"X-Platform": "desktop"}, 400, "X-Platform"),
    ({"X-Platform": ""}, 400, "X-Platform"),
    ({"X-Type": "t" * 101}, 400, "X-Type"),
])
def test_bad_headers_are_400_and_charge_nothing(studio_client, owner, headers, status, field):
    _, h = owner
    before, images = balances(studio_client, h), image_count(studio_client)
    r = studio_client.post(CREATE, headers={**h, **headers}, json=GOOD)
    assert r.status_code == status and field in r.json()["message"]
    assert balances(studio_client, h) == before and image_count(studio_client) == images


@pytest.mark.parametrize("platform", ["web", "app", "figma", "api"])
def test_every_platform_is_accepted(studio_client, owner, platform):
    _, h = owner
    r = studio_client.post(CREATE, headers={**h, "X-Platform": platform}, json=GOOD)
    assert r.status_code == 200 and json.loads(r.json()["images"][0]["etc"])["platform"] == platform


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"X-Api-Key": ""}])
def test_bad_key_is_401_in_studio_shape(studio_client, headers):
    images = image_count(studio_client)
    r = studio_client.post(CREATE, headers=headers, json=GOOD)
    assert r.status_code == 401
    assert r.json()["statusCode"] == 401 and r.json()["error"] == "Unauthorized" and r.json()["message"]
    assert image_count(studio_client) == images


def test_body_over_the_limit_is_413(studio_client, owner):
    _, h = owner
    limit = studio_client.app.state.max_body_bytes
    before, images = balances(studio_client, h), image_count(studio_client)
    r = studio_client.post(CREATE, headers={**h, "Content-Type": "application/json"},
                           content=b'{"prompt": "' + b"a" * limit + b'"}')
    assert r.status_code == 413 and r.json()["statusCode"] == 413
    assert r.json()["error"] == "Request Entity Too Large" and "body" in r.json()["message"]
    assert balances(studio_client, h) == before and image_count(studio_client) == images


def test_not_json_is_400(studio_client, owner):
    _, h = owner
    r = studio_client.post(CREATE, headers={**h, "Content-Type": "application/json"}, content=b"{nope")
    assert r.status_code == 400 and r.json()["error"] == "Bad Request"


def test_short_credits_are_402_with_balances_and_nothing_generated(studio_client, owner):
    owner_id, h = owner
    studio_client.app.state.studio.credits.grant(owner_id, -998, bucket="daily")  # 2 left
    images = image_count(studio_client)
    r = studio_client.post(CREATE, headers=h, json={**GOOD, "sample": 4})
    assert r.status_code == 402, r.text
    assert r.json() == {"statusCode": 402, "message": r.json()["message"], "error": "Payment Required",
                        "defaultCredit": 0, "dailyCredit": 2, "monthlyCredit": 0}
    assert image_count(studio_client) == images
    r = studio_client.post(CREATE, headers=h, json={**GOOD, "sample": 2})  # exactly enough
    assert r.status_code == 200 and r.json()["dailyCredit"] == 0


def test_prompt_fields_are_stored_and_returned(studio_client, owner):
    _, h = owner
    body = {**GOOD, "styleId": None, "collectionId": None, "image": upload(studio_client, h),
            "prompt": "유니콘이 인간 그룹과 뛰어놀고 있다", "randomPrompt": "random words",
            "initialPrompt": "유니콘", "enhancedPrompt": "a unicorn is playing with a group of humans",
            "captionPrompt": "a red square", "captionTPrompt": "빨간 사각형", "groupId": "g-prompts"}
    body = {k: v for k, v in body.items() if v is not None}
    r = studio_client.post(CREATE, headers=h, json=body)
    info = r.json()["images"][0]["GenerationInfo"]
    assert info["originalPrompt"] == "유니콘"
    assert info["main"] == info["super"] == "a unicorn is playing with a group of humans"
    assert info["promptSource"] == "enhancedPrompt" and info["groupId"] == "g-prompts"
    for k in ("randomPrompt", "initialPrompt", "enhancedPrompt", "captionPrompt", "captionTPrompt"):
        assert info[k] == body[k]
    image_id = r.json()["images"][0]["imageId"]
    again = studio_client.get(f"/api/images/{image_id}", headers=h).json()["images"][0]["GenerationInfo"]
    assert again == info


def test_korean_prompt_without_translation_goes_through_and_says_so(studio_client, owner):
    _, h = owner
    r = studio_client.post(CREATE, headers=h, json={**GOOD, "prompt": "고양이"})
    info = r.json()["images"][0]["GenerationInfo"]
    assert info["main"] == "고양이" and "untranslated" in info["promptSource"]
