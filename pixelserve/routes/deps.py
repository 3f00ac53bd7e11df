"""FastAPI dependencies reading what ``create_app`` put on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from pixelserve.service.auth import Authenticator
from pixelserve.service.generation import GenerationService


def get_service(request: Request) -> GenerationService:
    return request.app.state.service


def get_auth(request: Request) -> Authenticator:
    return request.app.state.auth


def base_url(request: Request) -> str:
    """Absolute root for URLs we hand out: the configured public URL, else the request's own."""
    configured = request.app.state.settings.public_base_url
    return configured or str(request.base_url).rstrip("/")
