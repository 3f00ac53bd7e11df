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
from pixelserve.dialects.octoai.protocol import (ASSET_ENGINES, AssetEngine, AssetType, CompleteAssetUploadResponse,
                                                CompleteUploadRequest, CreateAssetRequest, CreateAssetResponse, DataType,
                                                DeleteAssetResponse, ErrorBody, FileFormat, ListAssetsResponse,
                                                RetrieveAssetResponse)
from pixelserve.dialects.octoai.router import ERRORS, Assets, Key, OctoAIRoute
from pixelserve.dialects.base import phrase
from pixelserve.errors import Forbidden, NotFound, PayloadTooLarge, PixelserveError, status_of
from pixelserve.routes.deps import base_url
from pixelserve.service.assets import ASSET_ID, ASSET_NAME, PUBLIC, PUT_STATES, AssetFilter, AssetService, scope_of

router = APIRouter(route_class=OctoAIRoute, tags=["OctoAI asset library"])
#: The signed upload and download URLs: plain routes, so a PUT streams to disk instead of into memory.
files_router = APIRouter(tags=["OctoAI asset library"])

KIND_OF_TYPE = {"checkpoint": ("checkpoint", "controlnet"), "lora": ("lora",), "vae": ("vae",),
                "textual_inversion": ("textual_inversion",), "file": ("-",), "latent": ("-",)}


def transfer_api(request: Request, row) -> dict:
    """Signed URLs for the caller's own uploaded asset; ``none`` for configured and public ones."""
    if row.origin != "upload" or row.scope == PUBLIC:
        return {"type": "none"}
    signer, root, assets = request.app.state.signer, base_url(request), request.app.state.assets
    # Straight into the store where it signs URLs itself (S3), else pixelserve's own signed routes.
    return {"type": "presigned-url",
            "put_url": assets.store_put_url(row.id, signer.ttl)
            or f"{root}/v1/assets/{row.id}/upload?{signer.query(f'upload:{row.id}')}",
            "get_url": assets.store_get_url(row.id, signer.ttl)
            or f"{root}/v1/assets/{row.id}/download?{signer.query(f'download:{row.id}')}"}


@router.post("/v1/assets", response_model=CreateAssetResponse, responses=ERRORS)
async def create_asset(body: CreateAssetRequest, request: Request, key: Key, assets: Assets) -> JSONResponse:
    """Create an asset; PUT its file to ``transfer_api.put_url``, then call complete-upload."""
    if body.is_public:
        raise Forbidden("only an admin creates public assets (pixelserve assets add --public)")
    fields = translate.asset_from_wire(body)
    row = await asyncio.to_thread(assets.create, scope_of(key), name=body.name, **fields)
    return JSONResponse({"asset": translate.asset_to_wire(row), "transfer_api": transfer_api(request, row)})


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
    scope = scope_of(key)
    scopes = {scope, PUBLIC}
    if name is not None and name.startswith(translate.PUBLIC_PREFIX):
        name, is_public = name[len(translate.PUBLIC_PREFIX):], True
    if is_public is not None:
        scopes &= {PUBLIC} if is_public else {scope}
    if owner is not None:
        scopes &= {PUBLIC} if owner == translate.PUBLIC_TENANT else {owner}
    kinds = tuple(k for t in asset_type or () for k in KIND_OF_TYPE[t])
    families = tuple("sdxl" if ASSET_ENGINES[e].endswith("sdxl") else "sd" for e in engine or ())
    # Only safetensors files are ever stored, and every asset is an image one.
    impossible = engine_type not in (None, "image") or any(f != "safetensors" for f in file_format or ())
    f = AssetFilter(scopes=tuple(sorted(scopes)) if not impossible else (), name=name, kinds=kinds,
                    families=families, ids=tuple(i for i in (asset_ids or "").split(",") if i), limit=limit,
                    offset=offset)
    rows, total = await asyncio.to_thread(assets.listing, f)
    if data_type is not None:  # data_type lives in the asset's own description, not a column
        rows = [r for r in rows if (r.meta or {}).get("data_type") == data_type]
    return JSONResponse({"data": [translate.asset_to_wire(r) for r in rows], "has_more": offset + len(rows) < total,
                         "total": total})


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
async def upload_file(asset_id: str, request: Request, expires: int = 0, signature: str = "") -> Response:
    """The asset's file as the request body (a signed URL: no Authorization header)."""
    assets: AssetService = request.app.state.assets
    try:
        request.app.state.signer.verify(f"upload:{asset_id}", expires, signature)
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
async def download_file(asset_id: str, request: Request, expires: int = 0, signature: str = "") -> Response:
    try:
        request.app.state.signer.verify(f"download:{asset_id}", expires, signature)
        path = request.app.state.assets.file_of(asset_id)
        if not path.is_file():
            raise NotFound("the asset has no uploaded file")
    except PixelserveError as e:
        return OctoAIRoute.render(e, status_of(e))
    return FileResponse(path, media_type="application/octet-stream", filename=f"{asset_id}.safetensors")


@router.get("/v1/assets/{ref:path}", response_model=RetrieveAssetResponse, responses=ERRORS)
async def get_asset(ref: str, request: Request, key: Key, assets: Assets) -> JSONResponse:
    """One asset by id, ``<owner>/<name>``, ``octoai:<name>`` or the caller's own ``<name>``."""
    scope = scope_of(key)
    if ASSET_ID.fullmatch(ref):
        row = await asyncio.to_thread(assets.get, scope, ref)
    else:
        owner, _, name = ref.rpartition("/") if "/" in ref else ("", "", ref)
        public, name = translate.asset_name(name)
        owner = PUBLIC if public or owner == translate.PUBLIC_TENANT else (owner or scope)
        if not ASSET_NAME.fullmatch(name):
            raise NotFound("no such asset")
        row = await asyncio.to_thread(assets.get_named, scope, owner, name)
    api = transfer_api(request, row) if row.scope == scope and row.status in PUT_STATES + ("ready",) else \
        {"type": "none"}
    return JSONResponse({"asset": translate.asset_to_wire(row), "transfer_api": api})
