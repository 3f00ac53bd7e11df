"""Reference image paths stay inside the caller's area of the store; uploads are decoded with limits."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from tests.api.studio.helpers import CREATE, balances, png_bytes, upload
from tests.conftest import TEST_STORE

#: These look at the local store's files on disk (symlinks, leftovers); PIXELSERVE_TEST_STORE=s3 has none.
on_local_disk = pytest.mark.skipif(TEST_STORE != "local", reason="inspects the local store's files on disk")


def create_with(client, headers, path):
    return client.post(CREATE, headers=headers, json={"prompt": "a cat", "image": path, "ratio": "1:1", "sample": 1})


@pytest.mark.parametrize("path", [
    "../1/reference.png", "1/../../etc/passwd", "/etc/passwd", "1/..", "1/.hidden.png", "1/", "1",
    "1/..%2f..%2fetc%2fpasswd", "1/%2e%2e%2fx.png", "1/a\x00.png", "1\\..\\x.png", "1//x.png",
    "1/x/../y.png", "file:///etc/passwd", "http://example.com/x.png", "1/" + "a" * 200 + ".png", "",
])
def test_hostile_paths_are_400_and_charge_nothing(studio_client, owner, path, monkeypatch):
    _, h = owner
    before = balances(studio_client, h)
    store, reads = studio_client.app.state.store, []
    monkeypatch.setattr(store, "get", lambda key: reads.append(key))
    r = create_with(studio_client, h, path)
    assert reads == []  # refused by its spelling, before any disk access
    assert r.status_code == 400, r.text
    assert "image" in r.json()["message"] and r.json()["error"] == "Bad Request"
    assert balances(studio_client, h) == before


def test_other_owners_and_missing_files_are_404(studio_client, owner):
    owner_id, h = owner
    theirs = upload(studio_client, {"X-Api-Key": studio_client.spec_key})
    for path in (theirs, f"{owner_id}/missing.png", f"{owner_id}/notes.txt", f"{owner_id + 1000}/x.png"):
        r = create_with(studio_client, h, path)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {"statusCode": 404, "message": r.json()["message"], "error": "Not Found"}


@on_local_disk
def test_symlinks_out_of_the_owner_area_are_404(studio_client, owner, tmp_path, monkeypatch):
    owner_id, h = owner
    root = studio_client.app.state.store.root
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    theirs = upload(studio_client, {"X-Api-Key": studio_client.spec_key}).split("/")[1]
    area = root / "uploads" / str(owner_id)
    area.mkdir(parents=True, exist_ok=True)
    (area / "outside.png").symlink_to(secret)
    (area / "neighbour.png").symlink_to(root / "uploads" / "1" / theirs)
    stat = os.stat(secret)
    store, reads = studio_client.app.state.store, []
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda key: reads.append(key) or real_get(key))
    for name in ("outside.png", "neighbour.png"):
        r = create_with(studio_client, h, f"{owner_id}/{name}")
        assert r.status_code == 404, r.text
    assert reads == []  # refused on the resolved path: the link's target is never opened
    assert os.stat(secret).st_mtime == stat.st_mtime and sorted(p.name for p in tmp_path.iterdir()) == ["secret.png"]


def test_upload_answers_an_owned_path_and_stores_a_png(studio_client, owner):
    owner_id, h = owner
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (0, 90, 200)).save(buf, format="JPEG")
    path = upload(studio_client, h, buf.getvalue())
    assert path.startswith(f"{owner_id}/reference-") and path.endswith(".png")
    stored = Image.open(io.BytesIO(studio_client.app.state.store.get(f"uploads/{path}")))
    assert stored.format == "PNG" and stored.size == (80, 60)
    assert create_with(studio_client, h, path).status_code == 200


def big_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG")  # compresses to a few kB
    return buf.getvalue()


@on_local_disk
@pytest.mark.parametrize("files, status", [
    ({"file": ("x.png", b"not an image", "image/png")}, 400),
    ({"file": ("x.gif", b"GIF89a....", "image/gif")}, 400),
    ({"other": ("x.png", png_bytes(), "image/png")}, 400),
    ({"file": ("bomb.png", big_png(4200), "image/png")}, 413),
])
def test_bad_uploads_are_refused_and_nothing_is_stored(studio_client, owner, files, status):
    owner_id, h = owner
    area = studio_client.app.state.store.root / "uploads" / str(owner_id)
    before = sorted(area.iterdir()) if area.exists() else []
    r = studio_client.post("/api/images/upload", headers=h, files=files)
    assert r.status_code == status, r.text
    assert r.json()["statusCode"] == status
    assert (sorted(area.iterdir()) if area.exists() else []) == before


def test_upload_needs_a_key(studio_client):
    r = studio_client.post("/api/images/upload", files={"file": ("x.png", png_bytes(), "image/png")})
    assert r.status_code == 401


@on_local_disk
def test_a_multipart_over_the_part_limit_says_so_not_that_json_is_bad(studio_client, owner):
    """Starlette refuses a form past its part limit (1,000 fields); the client hears that reason."""
    owner_id, h = owner
    area = studio_client.app.state.store.root / "uploads" / str(owner_id)
    fields = {f"f{i}": "x" for i in range(5000)}
    r = studio_client.post("/api/images/upload", headers=h, data=fields,
                           files={"file": ("x.png", png_bytes(), "image/png")})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["statusCode"] == 400 and "Too many fields" in body["message"], body
    assert "JSON" not in body["message"]
    assert not area.exists() or not list(area.iterdir())
