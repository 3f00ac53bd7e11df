"""Signed uploads into a local store: ``PUT /v1/uploads/<key>?expires=&signature=`` (the local-disk
side of storage/urls.upload_url; an S3 store hands out the bucket's own pre-signed PUT instead)."""

from __future__ import annotations

import asyncio
import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pixelserve.errors import PayloadTooLarge, PixelserveError, status_of
from pixelserve.storage.base import check_object_key

router = APIRouter(tags=["uploads"])


@router.put("/v1/uploads/{key:path}")
async def put_upload(key: str, request: Request, expires: int = 0, signature: str = "") -> JSONResponse:
    limit = request.app.state.settings.max_upload_bytes
    try:
        check_object_key(key)
        request.app.state.signer.verify(key, expires, signature, method="PUT")
        # Spooled: small files stay in memory, a multi-GB checkpoint goes to a temporary file.
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buf:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the upload is over {limit} bytes")
                buf.write(chunk)
            buf.seek(0)
            content_type = request.headers.get("content-type") or "application/octet-stream"
            await asyncio.to_thread(request.app.state.store.put_fileobj, key, buf, content_type)
    except PixelserveError as e:
        return JSONResponse({"detail": str(e)}, status_code=status_of(e))
    return JSONResponse({"key": key, "bytes": size})
