"""Styles and collections: CRUD per owner, built-ins read-only, used by create."""

from __future__ import annotations

from tests.api.studio.helpers import CREATE, upload

STYLE = {"name": "ink", "promptTemplate": "ink drawing of {prompt}", "negativePrompt": "colour",
         "sampler": "euler_a", "steps": 3, "cfgScale": 5.0}


def test_builtin_styles_are_listed_and_read_only(studio_client, owner):
    _, h = owner
    styles = studio_client.get("/api/styles", headers=h).json()["styles"]
    builtin = [s for s in styles if s["builtIn"]]
    assert {s["name"] for s in builtin} >= {"photographic", "anime", "watercolor", "3d-model"}
    assert studio_client.put("/api/styles/1", headers=h, json=STYLE).status_code == 404
    assert studio_client.delete("/api/styles/1", headers=h).status_code == 404
    assert studio_client.get("/api/styles/1", headers=h).json()["name"] == "photographic"


def test_style_crud_per_owner_and_use(studio_client, owner):
    _, h = owner
    r = studio_client.post("/api/styles", headers=h, json=STYLE)
    assert r.status_code == 201, r.text
    style = r.json()
    assert style["builtIn"] is False and style["sampler"] == "euler_a"
    other = {"X-Api-Key": studio_client.spec_key}
    assert studio_client.get(f"/api/styles/{style['id']}", headers=other).status_code == 404
    r = studio_client.post(CREATE, headers=other, json={"prompt": "a cat", "styleId": style["id"], "ratio": "1:1"})
    assert r.status_code == 404  # another owner's style does not exist for the caller
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", "styleId": style["id"], "ratio": "1:1",
                                                    "sample": 1})
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["GenerationInfo"]["super"] == "ink drawing of a cat"
    r = studio_client.put(f"/api/styles/{style['id']}", headers=h, json={**STYLE, "name": "ink 2"})
    assert r.json()["name"] == "ink 2"
    assert studio_client.delete(f"/api/styles/{style['id']}", headers=h).status_code == 204
    assert studio_client.get(f"/api/styles/{style['id']}", headers=h).status_code == 404


def test_style_fields_are_checked(studio_client, owner):
    _, h = owner
    for change, field in (({"promptTemplate": "no slot"}, "promptTemplate"), ({"sampler": "nope"}, "sampler"),
                          ({"steps": 0}, "steps"), ({"steps": 151}, "steps"), ({"cfgScale": 31}, "cfgScale"),
                          ({"name": ""}, "name")):
        r = studio_client.post("/api/styles", headers=h, json={**STYLE, **change})
        assert r.status_code == 400 and field in r.json()["message"], (change, r.text)


def test_collection_crud_and_create_with_it(studio_client, owner):
    _, h = owner
    path = upload(studio_client, h)
    r = studio_client.post("/api/collections", headers=h, json={"name": "set", "styleId": 3, "images": [path]})
    assert r.status_code == 201, r.text
    coll = r.json()
    assert coll["images"] == [path] and coll["styleId"] == 3
    r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", "collectionId": coll["id"], "ratio": "1:1",
                                                    "sample": 1})
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["GenerationInfo"]["style"] == "watercolor"
    other = {"X-Api-Key": studio_client.spec_key}
    assert studio_client.get(f"/api/collections/{coll['id']}", headers=other).status_code == 404
    assert studio_client.post(CREATE, headers=other, json={"prompt": "a", "collectionId": coll["id"],
                                                           "ratio": "1:1"}).status_code == 404
    r = studio_client.put(f"/api/collections/{coll['id']}", headers=h, json={"name": "renamed", "styleId": 1})
    assert r.json()["name"] == "renamed" and r.json()["images"] == []
    assert [c["id"] for c in studio_client.get("/api/collections", headers=h).json()["collections"]] == [coll["id"]]
    assert studio_client.delete(f"/api/collections/{coll['id']}", headers=h).status_code == 204
    assert studio_client.get(f"/api/collections/{coll['id']}", headers=h).status_code == 404


def test_collection_refuses_foreign_or_hostile_paths(studio_client, owner):
    _, h = owner
    theirs = upload(studio_client, {"X-Api-Key": studio_client.spec_key})
    for images, status in (([theirs], 404), (["../../etc/passwd"], 400), ([], 400)):
        r = studio_client.post("/api/collections", headers=h, json={"name": "x", "images": images})
        assert r.status_code == status, r.text
