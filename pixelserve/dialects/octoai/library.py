"""OctoAI's asset library, ``/v1/assets`` (the protocol in shared/specs/README.md).

create -> PUT the bytes to ``put_url`` (a signed, expiring URL served here) -> complete-upload
(validated at once: ``ready`` or ``rejected`` with ``status_details``) -> use the name in
``/generate``. A request names a public asset ``octoai:<name>`` and a private one by its bare name;
``GET /v1/assets/<owner>/<name>`` takes ``octoai`` (public) or the caller's ``tenant_uuid`` as owner.
Public assets are created only with ``pixelserve assets add --public``; ``is_public: true`` from
an API key is 403. ``asset_type: checkpoint`` with a ControlNet engine is a ControlNet.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.octoai import translate
from pixelserve.dialects.octoai.protocol import (AssetEngine, AssetType, CompleteAssetUploadResponse,
                                                CompleteUploadRequest, CreateAssetRequest, CreateAssetResponse, DataType,
                                                DeleteAssetResponse, ErrorBody, FileFormat, ListAssetsResponse,
                                                RetrieveAssetResponse)
from pixelserve.dialects.octoai.route import ERRORS, Key, OctoAIRoute
from pixelserve.errors import Forbidden, NotFound, PayloadTooLarge, PixelserveError, status_of
from pixelserve.http.deps import Assets, BaseUrl, Signer
from pixelserve.http.errors import phrase
from pixelserve.service.assets import AssetService
from pixelserve.service.asset_refs import ASSET_ID, PUBLIC, PUT_STATES, scope_of
from pixelserve.storage.signing import UrlSigner

router = APIRouter(route_class=OctoAIRoute, tags=["OctoAI asset library"])
#: The signed upload and download URLs: plain routes, so a PUT streams to disk instead of into memory.
files_router = APIRouter(tags=["OctoAI asset library"])


def transfer_api(row, scope: str, assets: AssetService, signer: UrlSigner, root: str) -> dict:
    """Signed URLs for the caller's own uploaded asset (still uploading, or ready); else ``none``."""
    own = row.scope == scope and row.scope != PUBLIC
    if row.origin != "upload" or not own or row.status not in PUT_STATES + ("ready",):
        return {"type": "none"}
    # Straight into the store where it signs URLs itself (S3), else pixelserve's own signed routes.
    return {"type": "presigned-url",
            "put_url": assets.store_put_url(row.id, signer.ttl)
            or f"{root}/v1/assets/{row.id}/upload?{signer.query(f'upload:{row.id}')}",
            "get_url": assets.store_get_url(row.id, signer.ttl)
            or f"{root}/v1/assets/{row.id}/download?{signer.query(f'download:{row.id}')}"}


@router.post("/v1/assets", response_model=CreateAssetResponse, responses=ERRORS)
async def create_asset(body: CreateAssetRequest, key: Key, assets: Assets, signer: Signer,
                       root: BaseUrl) -> JSONResponse:
    """Create an asset; PUT its file to ``transfer_api.put_url``, then call complete-upload."""
    if body.is_public:
        raise Forbidden("only an admin creates public assets (pixelserve assets add --public)")
    fields = translate.asset_from_wire(body)
    row = await asyncio.to_thread(assets.create, scope_of(key), name=body.name, **fields)
    return JSONResponse({"asset": translate.asset_to_wire(row), "transfer_api": transfer_api(row, scope_of(key), assets, signer, root)})


@router.get("/v1/assets", response_model=ListAssetsResponse, responses=ERRORS)
async def list_assets(
    key: Key, assets: Assets,
    name: Annotated[str | None, Query(max_length=120)] = None,
    is_public: bool | None = None,
    data_type: DataType | None = None,
    asset_type: Annotated[list[AssetType] | None, Query(max_length=10)] = None,
    engine: Annotated[list[AssetEngine] | None, Query(max_length=10)] = None,
    engine_type: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,  # our bounds
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    get_preview_urls: bool | None = None,
    asset_ids: Annotated[str | None, Query(max_length=4000)] = None,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    file_format: Annotated[list[FileFormat] | None, Query(max_length=10)] = None,
) -> JSONResponse:
    """The caller's assets and the public ones, newest first, with filters."""
    f = translate.asset_filter(scope_of(key), name=name, is_public=is_public, asset_type=asset_type, engine=engine,
                               engine_type=engine_type, limit=limit, offset=offset, asset_ids=asset_ids, owner=owner,
                               file_format=file_format)
    rows, total = await asyncio.to_thread(assets.listing, f)
    return JSONResponse(translate.asset_page_to_wire(rows, total, offset, data_type))


@router.post("/v1/assets/{asset_id}/complete-upload", response_model=CompleteAssetUploadResponse, responses=ERRORS)
async def complete_upload(asset_id: Annotated[str, Path(max_length=100)], key: Key, assets: Assets,
                          body: CompleteUploadRequest | None = None) -> JSONResponse:
    """Validate the uploaded file: the asset turns ``ready``, or ``rejected`` with the reason."""
    row = await asyncio.to_thread(assets.complete, scope_of(key), asset_id)
    return JSONResponse({"error": row.status_details if row.status == "rejected" else None})


@router.delete("/v1/assets/{asset_id}", response_model=DeleteAssetResponse, responses=ERRORS)
async def delete_asset(asset_id: str, key: Key, assets: Assets) -> JSONResponse:
    row = await asyncio.to_thread(assets.owned, scope_of(key), asset_id)
    await asyncio.to_thread(assets.delete, row.id)
    deleted = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    return JSONResponse({"id": row.id, "deleted_at": deleted})


#: What the signed file routes answer besides success, in FastAPI's ``{"detail": "..."}``.
FILE_ERRORS = {status: {"model": ErrorBody, "description": phrase(status)} for status in (403, 404, 409, 413)}


@files_router.put("/v1/assets/{asset_id}/upload", responses=FILE_ERRORS)  # not in OctoAI spec: where put_url points
async def upload_file(asset_id: str, request: Request, assets: Assets, signer: Signer, expires: int = 0,
                      signature: str = "") -> Response:
    """The asset's file as the request body (a signed URL: no Authorization header)."""
    try:
        signer.verify(f"upload:{asset_id}", expires, signature)
        declared = request.headers.get("content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        part = await asyncio.to_thread(assets.begin_upload, asset_id, length)
        try:
            size = 0
            with part.open("wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > assets.max_bytes:
                        raise PayloadTooLarge(f"asset files are limited to {assets.max_bytes} bytes")
                    f.write(chunk)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(assets.abort_upload, asset_id, part))
            raise
        await asyncio.to_thread(assets.end_upload, asset_id, part, size)
    except PixelserveError as e:
        return OctoAIRoute.render(e, status_of(e))
    return Response(status_code=200)


@files_router.get("/v1/assets/{asset_id}/download", responses=FILE_ERRORS)  # not in OctoAI spec: get_url
async def download_file(asset_id: str, assets: Assets, signer: Signer, expires: int = 0,
                        signature: str = "") -> Response:
    try:
        signer.verify(f"download:{asset_id}", expires, signature)
        path = assets.file_of(asset_id)
        if not path.is_file():
            raise NotFound("the asset has no uploaded file")
    except PixelserveError as e:
        return OctoAIRoute.render(e, status_of(e))
    return FileResponse(path, media_type="application/octet-stream", filename=f"{asset_id}.safetensors")


@router.get("/v1/assets/{ref:path}", response_model=RetrieveAssetResponse, responses=ERRORS)
async def get_asset(ref: str, key: Key, assets: Assets, signer: Signer, root: BaseUrl) -> JSONResponse:
    """One asset by id, ``<owner>/<name>``, ``octoai:<name>`` or the caller's own ``<name>``."""
    scope = scope_of(key)
    if ASSET_ID.fullmatch(ref):
        row = await asyncio.to_thread(assets.get, scope, ref)
    else:
        row = await asyncio.to_thread(assets.get_named, scope, *translate.asset_owner_and_name(ref, scope))
    return JSONResponse({"asset": translate.asset_to_wire(row), "transfer_api": transfer_api(row, scope, assets,
                                                                                              signer, root)})
