"""Serves stored images at signed, expiring URLs (see storage/signing.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from pixelserve.core.images import CONTENT_TYPES
from pixelserve.core.json_response import JSONResponse
from pixelserve.errors import PixelserveError, status_of
from pixelserve.http.deps import Signer, Store
from pixelserve.storage.base import check_key

router = APIRouter(tags=["images"])


class Detail(BaseModel):
    detail: str


@router.get("/v1/images/{key:path}", response_class=Response, responses={
    200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in CONTENT_TYPES.values()},
          "description": "The image"},
    403: {"model": Detail, "description": "Bad or expired signature"},
    404: {"model": Detail, "description": "No such image"},
})
async def get_image(key: str, signer: Signer, store: Store, expires: int = 0, signature: str = "") -> Response:
    try:
        check_key(key)
        signer.verify(key, expires, signature)
        data = store.get(key)
    except PixelserveError as e:
        return JSONResponse({"detail": str(e)}, status_code=status_of(e))
    ext = key.rsplit(".", 1)[-1]
    return Response(data, media_type=CONTENT_TYPES[ext], headers={"Cache-Control": "private, max-age=600"})
