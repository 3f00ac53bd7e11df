"""A1111 routes: POST /sdapi/v1/txt2img and /sdapi/v1/img2img."""

from __future__ import annotations

from fastapi import APIRouter

from pixelserve.dialects.a1111.route import A1111Route

router = APIRouter(route_class=A1111Route, tags=["AUTOMATIC1111"])
