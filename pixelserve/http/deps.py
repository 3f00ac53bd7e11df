"""Every FastAPI dependency alias the routes use: what ``create_app`` put on ``app.state``.

A route names what it needs (``service: Service``, ``settings: SettingsDep`` ...). How a caller
sends its API key differs per dialect, so each dialect turns its own header into a ``Caller``
with ``Auth``.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import Depends, Request

from pixelserve.service.assets import AssetService
from pixelserve.service.auth import Authenticator
from pixelserve.service.pipeline import Pipeline
from pixelserve.service.jobs import JobRunner
from pixelserve.service.studio import StudioService
from pixelserve.settings import Settings
from pixelserve.storage.base import ImageStore
from pixelserve.storage.signing import UrlSigner


def _state(name: str) -> Callable[[Request], Any]:
    """A dependency that hands a route what create_app put in ``app.state.<name>``."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


get_settings = _state("settings")
get_service = _state("service")
get_auth = _state("auth")
get_assets = _state("assets")
get_studio = _state("studio")
get_studio_jobs = _state("studio_jobs")
get_store = _state("store")
get_signer = _state("signer")


def base_url(request: Request) -> str:
    """Absolute root for URLs we hand out: the configured public URL, else the request's own."""
    configured = request.app.state.settings.public_base_url
    return configured or str(request.base_url).rstrip("/")


SettingsDep = Annotated[Settings, Depends(get_settings)]
Service = Annotated[Pipeline, Depends(get_service)]
Auth = Annotated[Authenticator, Depends(get_auth)]
Assets = Annotated[AssetService, Depends(get_assets)]
Studio = Annotated[StudioService, Depends(get_studio)]
StudioJobs = Annotated[JobRunner, Depends(get_studio_jobs)]
Store = Annotated[ImageStore, Depends(get_store)]
Signer = Annotated[UrlSigner, Depends(get_signer)]
BaseUrl = Annotated[str, Depends(base_url)]
