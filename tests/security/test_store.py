"""The image store and its signed URLs: keys with traversal, absolute paths, NUL bytes, encoded
traversal or symlinks out of the store are refused and touch nothing outside it; a signed URL is
good at 599 s, 403 at 601 s, 403 with any character of its signature changed."""

import io
import os
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from pixelserve.errors import NotFound
from pixelserve.storage.local import LocalImageStore

HOSTILE_KEYS = [
    "../outside.png", "a/../../outside.png", "/etc/outside.png", "//etc/outside.png", "a/./b.png", "a//b.png",
    "a\x00.png", "a.png\x00.txt", "%2e%2e/outside.png", "..%2foutside.png", "a%2f..%2f..%2foutside.png",
    "a\\..\\outside.png", "C:\\outside.png", "a/b.txt", "a/b.png/", "", ".png", "a/.hidden.png", "~/outside.png",
    "a/b.png.part",
]


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    return buf.getvalue()


def listing(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def store(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(png())
    return LocalImageStore(tmp_path / "store")


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_and_nothing_outside_is_touched(store, tmp_path, key):
    before = listing(tmp_path)
    with pytest.raises(NotFound):
        store.put(key, png(), "image/png")
    with pytest.raises(NotFound):
        store.get(key)
    assert listing(tmp_path) == before


def test_symlinks_out_of_the_store_are_neither_read_nor_written_through(store, tmp_path):
    os.symlink(tmp_path / "outside", store.root / "escape")  # a directory link out of the store
    os.symlink(tmp_path / "outside" / "secret.png", store.root / "secret.png")  # a file link out
    before = listing(tmp_path / "outside")
    with pytest.raises(NotFound):
        store.get("escape/secret.png")
    with pytest.raises(NotFound):
        store.get("secret.png")
    with pytest.raises(NotFound):
        store.put("escape/new.png", png(), "image/png")
    with pytest.raises(NotFound):
        store.put("secret.png", b"overwritten", "image/png")
    assert listing(tmp_path / "outside") == before
    assert (tmp_path / "outside" / "secret.png").read_bytes() == png()


def test_a_normal_key_round_trips(store):
    store.put("job-1/image_2.png", png(), "image/png")
    assert store.get("job-1/image_2.png") == png()


# -- signed URLs (storage/signing.py, served by http/images.py) -------------------------------------
@pytest.fixture
def signed(app_client):
    """A stored image, a signed URL to it, and the signer's frozen clock (seconds since signing)."""
    state = app_client.app.state
    state.store.put("signed-test/picture.png", png(), "image/png")
    real = state.signer.clock
    now = [1_900_000_000.0]
    state.signer.clock = lambda: now[0]
    url = state.signer.sign("http://testserver", "signed-test/picture.png")
    yield url, now
    state.signer.clock = real


def with_signature(url: str, signature: str) -> str:
    path, _, query = url.partition("?")
    expires = parse_qs(query)["expires"][0]
    return f"{path}?expires={expires}&signature={signature}"


def test_a_signed_url_is_good_at_599_s_and_403_at_601_s(app_client, signed):
    url, now = signed
    ttl = app_client.app.state.signer.ttl
    assert ttl == 600
    now[0] += 599
    r = app_client.get(url)
    assert r.status_code == 200 and r.content == png()
    now[0] += 2
    r = app_client.get(url)
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_any_changed_character_of_the_signature_is_403(app_client, signed):
    url, _ = signed
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tried = 0
    for i, c in enumerate(signature):
        for other in (alphabet[(alphabet.index(c) + 1) % 64], alphabet[(alphabet.index(c) + 32) % 64]):
            r = app_client.get(with_signature(url, signature[:i] + other + signature[i + 1:]))
            assert r.status_code == 403, (i, other)
            tried += 1
    for forged in (signature[:-1], signature + "A", "", signature.upper(), signature[::-1]):
        assert app_client.get(with_signature(url, forged)).status_code == 403
    assert tried == 2 * len(signature) and len(signature) == 43  # every position of an HMAC-SHA256
    assert app_client.get(url).status_code == 200  # and the real one still works


def test_the_signature_covers_the_key_and_the_expiry(app_client, signed):
    url, _ = signed
    app_client.app.state.store.put("signed-test/other.png", png(), "image/png")
    assert app_client.get(url.replace("picture.png", "other.png")).status_code == 403
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    assert app_client.get(url.replace(f"expires={expires}", f"expires={int(expires) + 3600}")).status_code == 403


def test_a_signed_key_that_is_a_symlink_out_of_the_store_is_404(app_client, tmp_path):
    state = app_client.app.state
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    link = state.store.root / "signed-test" / "link.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    try:
        url = state.signer.sign("http://testserver", "signed-test/link.png")  # even a valid signature
        assert app_client.get(url).status_code == 404
    finally:
        link.unlink()
