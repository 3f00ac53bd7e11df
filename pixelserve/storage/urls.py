"""The URL handed to clients for a stored image: the store's own pre-signed URL where it has one
(S3), else pixelserve's signed route (local disk: GET /v1/images/...)."""

from __future__ import annotations

from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner


def download_url(store: ImageStore, signer: UrlSigner, base_url: str, key: str, ttl: int | None = None) -> str:
    """A URL that serves ``key`` for ``ttl`` seconds (default: the signer's TTL, Karlo's 10 minutes),
    then refuses (403)."""
    ttl = ttl or signer.ttl
    return store.presigned_get(key, ttl) or signer.sign(base_url, key, ttl=ttl)
