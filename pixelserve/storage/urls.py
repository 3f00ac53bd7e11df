"""The URLs handed to clients for a stored file: the store's own pre-signed URL where it has one
(S3), else pixelserve's signed routes (local disk: GET /v1/images/..., PUT /v1/uploads/...).

The asset-upload protocol uses ``upload_url``: the client PUTs the file's bytes to it before it
expires, then the server finds the file in the store under ``key``.
"""

from __future__ import annotations

from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner


def download_url(store: ImageStore, signer: UrlSigner, base_url: str, key: str) -> str:
    """A URL that serves ``key`` for the signer's TTL (Karlo: 10 minutes), then refuses (403)."""
    return store.presigned_get(key, signer.ttl) or signer.sign(base_url, key)


def upload_url(store: ImageStore, signer: UrlSigner, base_url: str, key: str, ttl: int | None = None,
               content_type: str | None = None) -> str:
    """A URL the client PUTs ``key``'s bytes to within ``ttl`` seconds (default: the signer's)."""
    return store.presigned_put(key, ttl or signer.ttl, content_type) or signer.sign(base_url, key, "PUT", ttl)
