"""S3Store against a real S3 server (SeaweedFS on 127.0.0.1): the ImageStore interface, keys kept
inside the prefix, pre-signed GET and PUT URLs that the server itself honours and lets expire."""

from __future__ import annotations

import calendar
import io
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pixelserve.errors import NotFound
from pixelserve.storage.s3 import S3Store


@pytest.fixture
def store(seaweed_s3, bucket, prefix) -> S3Store:
    s = seaweed_s3.store_settings(bucket, prefix=prefix)
    return S3Store(s["s3_bucket"], prefix=s["s3_prefix"], endpoint_url=s["s3_endpoint_url"],
                   access_key_id=s["s3_access_key_id"], secret_access_key=s["s3_secret_access_key"],
                   create_bucket=True)


def raw_keys(seaweed_s3, bucket, prefix) -> list[str]:
    """What the bucket holds under the test's folder (the prefix left on: the real object names)."""
    listing = seaweed_s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_put_get_open_exists_delete(store, seaweed_s3, bucket, prefix):
    store.put("job-1/a.png", b"\x89PNG one", "image/png")
    assert store.get("job-1/a.png") == b"\x89PNG one"
    with store.open("job-1/a.png") as f:
        assert f.read(4) == b"\x89PNG"
    assert store.exists("job-1/a.png") and not store.exists("job-1/b.png")
    assert raw_keys(seaweed_s3, bucket, prefix) == [f"{prefix}job-1/a.png"]  # under the prefix
    head = seaweed_s3.client().head_object(Bucket=bucket, Key=f"{prefix}job-1/a.png")
    assert head["ContentType"] == "image/png"
    store.delete("job-1/a.png")
    store.delete("job-1/a.png")  # gone already: no error
    assert not store.exists("job-1/a.png")
    with pytest.raises(NotFound):
        store.get("job-1/a.png")
    with pytest.raises(NotFound):
        store.open("nothing/here.png")


def test_a_large_file_goes_up_in_parts(store):
    data = os.urandom(9 * 1024 * 1024)  # over boto3's 8 MB multipart threshold
    store.put_fileobj("assets/a1/lora.safetensors", io.BytesIO(data), "application/octet-stream")
    with store.open("assets/a1/lora.safetensors") as f:
        assert f.read() == data


@pytest.mark.parametrize("key", ["../escape.png", "/abs.png", "a/../../b.png", ".hidden", "a//b.png", "a/.x/b.png",
                                 "", "x" * 301, "a\\b.png", "a/b.png\x00"])
def test_keys_outside_the_prefix_are_refused(store, seaweed_s3, bucket, prefix, key):
    with pytest.raises(NotFound):
        store.put(key, b"x", "image/png")
    with pytest.raises(NotFound):
        store.get(key)
    assert raw_keys(seaweed_s3, bucket, prefix) == []


def test_presigned_get_serves_for_its_ttl_then_403(store):
    store.put("job-2/a.webp", b"RIFF webp bytes", "image/webp")
    url = store.presigned_get("job-2/a.webp", 600)  # Karlo's 10 minutes
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["600"]
    r = httpx.get(url)  # plain HTTP, no credentials: the bucket itself checks the signature
    assert r.status_code == 200 and r.content == b"RIFF webp bytes" and r.headers["content-type"] == "image/webp"
    assert urlsplit(url).path.endswith("job-2/a.webp")
    assert httpx.get(url.replace("job-2/a.webp", "job-2/b.webp")).status_code == 403  # another key
    assert httpx.get(url.split("?")[0]).status_code == 403  # no signature
    # The signature's time is whole seconds (X-Amz-Date), so a URL lives between ttl - 1 and ttl seconds:
    # 3 s leaves a loaded CI machine 2 s to fetch it while it is still valid.
    short = store.presigned_get("job-2/a.webp", 3)
    assert httpx.get(short).status_code == 200
    signed = calendar.timegm(time.strptime(parse_qs(urlsplit(short).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    time.sleep(max(0.0, signed + 3 + 1.2 - time.time()))
    r = httpx.get(short)
    assert r.status_code == 403 and "expired" in r.text.lower()


def test_presigned_put_takes_one_key_until_it_expires(store):
    url = store.presigned_put("assets/a2/model.safetensors", 60, "application/octet-stream")
    r = httpx.put(url, content=b"safetensors bytes", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert store.get("assets/a2/model.safetensors") == b"safetensors bytes"
    other = url.replace("a2/model", "a3/model")
    assert httpx.put(other, content=b"x", headers={"Content-Type": "application/octet-stream"}).status_code == 403
    assert not store.exists("assets/a3/model.safetensors")
    short = store.presigned_put("assets/a4/late.safetensors", 1)
    time.sleep(2.2)
    assert httpx.put(short, content=b"late").status_code == 403
    assert not store.exists("assets/a4/late.safetensors")


def test_urls_are_signed_for_the_public_endpoint(seaweed_s3, bucket, prefix):
    s = seaweed_s3.store_settings(bucket)
    store = S3Store(bucket, prefix=prefix, endpoint_url=s["s3_endpoint_url"], public_endpoint_url="https://cdn.example.com",
                    access_key_id=s["s3_access_key_id"], secret_access_key=s["s3_secret_access_key"],
                    create_bucket=True)
    store.put("k/a.png", b"png", "image/png")  # pixelserve itself talks to the internal endpoint
    assert store.presigned_get("k/a.png", 600).startswith(f"https://cdn.example.com/{bucket}/{prefix}k/a.png?")
    proxied = S3Store(bucket, prefix=prefix, endpoint_url=s["s3_endpoint_url"], access_key_id=s["s3_access_key_id"],
                      secret_access_key=s["s3_secret_access_key"], presigned_urls=False)
    assert proxied.presigned_get("k/a.png", 600) is None and proxied.get("k/a.png") == b"png"
