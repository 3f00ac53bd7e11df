"""A1111 routes: everything but generation (progress, options, models, samplers, png-info ...)."""

from __future__ import annotations

from fastapi import APIRouter

from pixelserve.dialects.a1111.route import A1111Route

router = APIRouter(route_class=A1111Route, tags=["AUTOMATIC1111"])
