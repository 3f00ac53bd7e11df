"""The URL handed to clients for a stored image: the store's own pre-signed URL where it has one
(S3), else pixelserve's signed route (local disk: GET /v1/images/...)."""

from __future__ import annotations

from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner


def download_url(store: ImageStore, signer: UrlSigner, base_url: str, key: str) -> str:
    """A URL that serves ``key`` for the signer's TTL (Karlo: 10 minutes), then refuses (403)."""
    return store.presigned_get(key, signer.ttl) or signer.sign(base_url, key)
