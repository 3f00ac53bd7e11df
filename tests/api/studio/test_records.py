"""Image records after the create: async progress, upscales, bookmarks, groups."""

from __future__ import annotations

import json
import time

import pytest

from tests.api.studio.helpers import CREATE, balances, decode, upload

GOOD = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1}


def wait_for(client, headers, image_id, states=("COMPLETED", "FAILED"), timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/images/{image_id}", headers=headers)
        assert r.status_code == 200, r.text
        im = r.json()["images"][0]
        if im["generationStatus"] in states:
            return im
        time.sleep(0.05)
    raise AssertionError(f"image {image_id} still {im['generationStatus']}")


def test_async_returns_pending_records_then_they_complete(studio_client, owner):
    _, h = owner
    r = studio_client.post(CREATE, headers=h, json={**GOOD, "sample": 2, "async": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["images"]) == 2
    for im in out["images"]:
        assert im["generationStatus"] == "PENDING" and im["base64"] is None
    done = [wait_for(studio_client, h, im["imageId"]) for im in out["images"]]
    for im in done:
        assert im["generationStatus"] == "COMPLETED" and decode(im["base64"]).size == (64, 64)
    assert out["dailyCredit"] == balances(studio_client, h)["dailyCredit"]  # reserved up front, settled as charged


def test_get_image_of_another_owner_or_unknown_is_404(studio_client, owner):
    _, h = owner
    image_id = studio_client.post(CREATE, headers=h, json=GOOD).json()["images"][0]["imageId"]
    other = {"X-Api-Key": studio_client.spec_key}
    for headers, path in ((other, f"/api/images/{image_id}"), (h, "/api/images/999999")):
        r = studio_client.get(path, headers=headers)
        assert r.status_code == 404 and r.json()["statusCode"] == 404 and r.json()["error"] == "Not Found"
    r = studio_client.get("/api/images/abc", headers=h)
    assert r.status_code == 400 and "imageId" in r.json()["message"]


def test_upscale_creates_an_upscaled_record_and_charges_by_factor(studio_client, owner):
    _, h = owner
    parent = studio_client.post(CREATE, headers=h, json=GOOD).json()["images"][0]
    before = balances(studio_client, h)["dailyCredit"]
    r = studio_client.post(f"/api/images/{parent['imageId']}/upscale", headers=h, json={"scaleSize": "2x"})
    assert r.status_code == 200, r.text
    [up] = r.json()["images"]
    assert up["generationStatus"] == "COMPLETED" and up["resolution"] == "128x128"
    assert decode(up["base64"]).size == (128, 128)
    assert json.loads(up["etc"])["parentImageId"] == parent["imageId"]
    assert r.json()["dailyCredit"] == before - 1  # settings: 2x costs 1
    again = studio_client.get(f"/api/images/{parent['imageId']}", headers=h).json()["images"][0]
    assert again["Upscaled"] == [{"imageId": up["imageId"], "type": "upscale", "scaleSize": ["2x"],
                                  "generationStatus": "COMPLETED",
                                  "Image": {"DownloadLog": [], "CollectionInfo": {"enabled": False}}}]
    r = studio_client.post(f"/api/images/{parent['imageId']}/upscale", headers=h, json={"scaleSize": "1x"})
    assert r.json()["images"][0]["resolution"] == "64x64" and r.json()["dailyCredit"] == before - 1  # 1x: free copy
    # an upscale of an upscale, a bad factor, someone else's image: refused, nothing charged
    for image_id, body, status in ((up["imageId"], {"scaleSize": "2x"}, 400),
                                   (parent["imageId"], {"scaleSize": "3x"}, 400),
                                   (parent["imageId"], {}, 400), (999999, {"scaleSize": "2x"}, 404)):
        r = studio_client.post(f"/api/images/{image_id}/upscale", headers=h, json=body)
        assert r.status_code == status, r.text
    r = studio_client.post(f"/api/images/{parent['imageId']}/upscale", headers={"X-Api-Key": studio_client.spec_key},
                           json={"scaleSize": "2x"})
    assert r.status_code == 404
    assert balances(studio_client, h)["dailyCredit"] == before - 1


def test_bookmarks_add_and_remove(studio_client, owner):
    owner_id, h = owner
    image_id = studio_client.post(CREATE, headers=h, json=GOOD).json()["images"][0]["imageId"]
    r = studio_client.post(f"/api/images/{image_id}/bookmark", headers=h)
    im = r.json()["images"][0]
    assert im["bookmarked"] is True and im["Bookmarks"] == [{"userId": owner_id, "imageId": image_id}]
    studio_client.post(f"/api/images/{image_id}/bookmark", headers=h)  # twice: still one bookmark
    im = studio_client.get(f"/api/images/{image_id}", headers=h).json()["images"][0]
    assert len(im["Bookmarks"]) == 1 and im["bookmarked"] is True
    im = studio_client.delete(f"/api/images/{image_id}/bookmark", headers=h).json()["images"][0]
    assert im["bookmarked"] is False and im["Bookmarks"] == []
    r = studio_client.post(f"/api/images/{image_id}/bookmark", headers={"X-Api-Key": studio_client.spec_key})
    assert r.status_code == 404


def test_list_by_group_id_is_per_owner(studio_client, owner):
    _, h = owner
    ids = []
    for _ in range(2):
        r = studio_client.post(CREATE, headers=h, json={**GOOD, "groupId": "trip"})
        ids += [im["imageId"] for im in r.json()["images"]]
    studio_client.post(CREATE, headers=h, json={**GOOD, "groupId": "other"})
    r = studio_client.get("/api/images", params={"groupId": "trip"}, headers=h)
    assert r.status_code == 200 and [im["imageId"] for im in r.json()["images"]] == ids
    assert all(im["GenerationInfo"]["groupId"] == "trip" for im in r.json()["images"])
    assert "dailyCredit" in r.json()
    r = studio_client.get("/api/images", params={"groupId": "trip"}, headers={"X-Api-Key": studio_client.spec_key})
    assert r.json()["images"] == []
    assert studio_client.get("/api/images", headers=h).status_code == 400


def test_reference_image_guides_the_demo_model_as_an_image_prompt(studio_client, owner):
    """The demo's models have a tiny IP-Adapter (#16), so a reference image is an image prompt there;
    on a model without one it starts an img2img (tests/api/studio/test_translate_golden.py)."""
    _, h = owner
    path = upload(studio_client, h)
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", "image": path, "ratio": "16:9", "sample": 1})
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["resolution"] == "112x64"
    from pixelserve.db.models_studio import StudioImage, StudioJob

    with studio_client.app.state.sessions() as s:
        job = s.get(StudioJob, s.get(StudioImage, r.json()["images"][0]["imageId"]).job_id)
    assert job.plan["request"]["task"] == "txt2img" and job.plan["request"]["strength"] is None
    assert job.plan["request"]["image_prompt_scale"] == studio_client.app.state.settings.studio_reference_scale
    assert job.plan["reference_key"] == "uploads/" + path


def test_style_only_request_is_txt2img_with_the_style_template(studio_client, owner):
    _, h = owner
    r = studio_client.post(CREATE, headers=h, json={**GOOD, "styleId": 2})
    info = r.json()["images"][0]["GenerationInfo"]
    assert info["main"] == "a cat" and info["super"].startswith("anime artwork of a cat") and info["style"] == "anime"


@pytest.mark.parametrize("scale, side, cost", [("4x", 256, 2), ("8x", 512, 4)])  # 8x: two engine passes (4, 2)
def test_upscale_4x_and_8x(studio_client, owner, scale, side, cost):
    _, h = owner
    parent = studio_client.post(CREATE, headers=h, json=GOOD).json()["images"][0]
    before = balances(studio_client, h)["dailyCredit"]
    r = studio_client.post(f"/api/images/{parent['imageId']}/upscale", headers=h, json={"scaleSize": scale})
    assert r.status_code == 200, r.text
    [up] = r.json()["images"]
    assert up["resolution"] == f"{side}x{side}" and decode(up["base64"]).size == (side, side)
    assert json.loads(up["etc"])["scaleSize"] == scale
    assert r.json()["dailyCredit"] == before - cost  # settings: studio_upscale_cost
