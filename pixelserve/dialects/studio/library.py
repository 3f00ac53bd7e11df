"""Styles and collections, per owner (not in Studio spec: the spec names styleId-like choices and
collection ids but not their endpoints). Built-in styles are listed for everyone and read-only."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from pixelserve.core.json_response import JSONResponse
from pixelserve.dialects.studio import translate
from pixelserve.dialects.studio.protocol import (CollectionBody, CollectionOut, CollectionsResponse, RecordId, StyleBody,
                                                 StyleOut, StylesResponse)
from pixelserve.dialects.studio.route import Key, StudioRoute, owner_of
from pixelserve.http.deps import Studio

router = APIRouter(route_class=StudioRoute, tags=["Studio styles and collections"])


def _style_values(body: StyleBody) -> dict:
    return {"name": body.name, "prompt_template": body.promptTemplate, "negative_prompt": body.negativePrompt,
            "sampler": body.sampler, "steps": body.steps, "cfg_scale": body.cfgScale,
            "lora": body.lora.model_dump() if body.lora else None}


def _collection_values(body: CollectionBody) -> dict:
    return {"name": body.name, "style_id": body.styleId, "images": list(body.images)}


@router.get("/api/styles", response_model=StylesResponse)
async def list_styles(key: Key, studio: Studio) -> JSONResponse:
    rows = await asyncio.to_thread(studio.styles, owner_of(key))
    return JSONResponse({"styles": [translate.style_to_wire(r) for r in rows]})


@router.post("/api/styles", status_code=201, response_model=StyleOut)
async def create_style(body: StyleBody, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.save_style, owner_of(key), _style_values(body))
    return JSONResponse(translate.style_to_wire(row), status_code=201)


@router.get("/api/styles/{styleId}", response_model=StyleOut)
async def get_style(styleId: RecordId, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.style, owner_of(key), styleId, None)
    return JSONResponse(translate.style_to_wire(row))


@router.put("/api/styles/{styleId}", response_model=StyleOut)
async def update_style(styleId: RecordId, body: StyleBody, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.save_style, owner_of(key), _style_values(body), styleId)
    return JSONResponse(translate.style_to_wire(row))


@router.delete("/api/styles/{styleId}", status_code=204)
async def delete_style(styleId: RecordId, key: Key, studio: Studio) -> Response:
    await asyncio.to_thread(studio.delete_style, owner_of(key), styleId)
    return Response(status_code=204)


@router.get("/api/collections", response_model=CollectionsResponse)
async def list_collections(key: Key, studio: Studio) -> JSONResponse:
    rows = await asyncio.to_thread(studio.collections, owner_of(key))
    return JSONResponse({"collections": [translate.collection_to_wire(r) for r in rows]})


@router.post("/api/collections", status_code=201, response_model=CollectionOut)
async def create_collection(body: CollectionBody, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.save_collection, owner_of(key), _collection_values(body))
    return JSONResponse(translate.collection_to_wire(row), status_code=201)


@router.get("/api/collections/{collectionId}", response_model=CollectionOut)
async def get_collection(collectionId: RecordId, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.collection, owner_of(key), collectionId, None)
    return JSONResponse(translate.collection_to_wire(row))


@router.put("/api/collections/{collectionId}", response_model=CollectionOut)
async def update_collection(collectionId: RecordId, body: CollectionBody, key: Key, studio: Studio) -> JSONResponse:
    row = await asyncio.to_thread(studio.save_collection, owner_of(key), _collection_values(body), collectionId)
    return JSONResponse(translate.collection_to_wire(row))


@router.delete("/api/collections/{collectionId}", status_code=204)
async def delete_collection(collectionId: RecordId, key: Key, studio: Studio) -> Response:
    await asyncio.to_thread(studio.delete_collection, owner_of(key), collectionId)
    return Response(status_code=204)
