"""Styles and collections: CRUD per owner, built-ins read-only, used by create."""

from __future__ import annotations

from tests.api.studio.helpers import CREATE, balances, upload

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


def _image_b64(client, headers, body) -> str:
    r = client.post(CREATE, headers=headers, json={"prompt": "a cat", "ratio": "1:1", "sample": 1, **body})
    assert r.status_code == 200, r.text
    return r.json()["images"][0]["base64"]


def test_style_lora_comes_from_the_asset_library_and_changes_the_image(studio_client, owner, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pixelserve.core import validate
    from pixelserve.engine.demo.tiny_adapters import ensure_tiny_lora
    from pixelserve.service.asset_refs import scope_of
    from tests.api.studio.test_create import image_count

    owner_id, h = owner
    family = studio_client.app.state.studio.model().family
    lora = {"name": f"ink-lines-{owner_id}", "weight": 0.8}
    r = studio_client.post("/api/styles", headers=h, json={**STYLE, "lora": lora})
    assert r.status_code == 201, r.text
    style = r.json()
    assert style["lora"] == lora and studio_client.get(f"/api/styles/{style['id']}", headers=h).json()["lora"] == lora
    coll = studio_client.post("/api/collections", headers=h, json={"name": "c", "styleId": style["id"]}).json()
    # Not in the caller's asset library yet: 404 naming where the style came from; nothing charged or recorded.
    before, images = balances(studio_client, h), image_count(studio_client)
    for field, record_id in (("styleId", style["id"]), ("collectionId", coll["id"])):
        r = studio_client.post(CREATE, headers=h, json={"prompt": "a cat", field: record_id, "ratio": "1:1"})
        assert r.status_code == 404, r.text
        assert field in r.json()["message"] and lora["name"] in r.json()["message"]
    assert balances(studio_client, h) == before and image_count(studio_client) == images
    # The caller uploads it (here through the service the CLI and /v1/assets use): the style draws with it.
    scope = scope_of(SimpleNamespace(id=owner_id))  # the Studio owner is the API key
    row = studio_client.app.state.assets.add_file(scope, ensure_tiny_lora(family, tmp_path), name=lora["name"],
                                                  kind="lora", family=family)
    assert row.status == "ready", row.status_details
    # Studio takes no seed: fix the random one so that images with and without the LoRA compare.
    monkeypatch.setattr(validate.secrets, "randbelow", lambda n: 1234)
    with_lora = _image_b64(studio_client, h, {"styleId": style["id"]})
    assert studio_client.put(f"/api/styles/{style['id']}", headers=h, json=STYLE).json()["lora"] is None
    without = _image_b64(studio_client, h, {"styleId": style["id"]})
    assert with_lora != without
    assert _image_b64(studio_client, h, {"collectionId": coll["id"]}) == without  # the collection follows its style


def test_style_lora_fields_are_checked(studio_client, owner):
    _, h = owner
    for lora, field in (({"name": ""}, "lora.name"), ({"weight": 1.0}, "lora.name"),
                        ({"name": "x", "weight": 2.5}, "lora.weight"), ({"name": "x", "weight": -0.1}, "lora.weight"),
                        ({"name": "x", "scale": 1}, "lora.scale"), ("x", "lora")):
        r = studio_client.post("/api/styles", headers=h, json={**STYLE, "lora": lora})
        assert r.status_code == 400 and field in r.json()["message"], (lora, r.text)
