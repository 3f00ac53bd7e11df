"""The asset library's values: ids and names, scopes, what a request resolves an asset to, and listing
filters (service/assets.py does the work)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from pixelserve.service.auth import Caller

PUBLIC = "public"
ASSET_ID = re.compile(r"asset_[0-9a-f]{32}")
#: Asset names: never a path, no '/' or ':' (dialects refer to them as owner/name and prefix:name).
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: A PUT may (re)send the file in these states; complete-upload turns "uploaded" into ready or rejected.
PUT_STATES = ("ready_to_upload", "uploading", "uploaded")


@dataclass(frozen=True)
class ConfiguredAsset:
    """A public asset of the server's configuration (the app hands them in from a dialect's config)."""

    name: str
    kind: str  # controlnet | checkpoint
    family: str
    path: Path | None  # None: the tiny demo adapter of the kind and family, or a checkpoint's model_id
    model_id: str | None = None  # a checkpoint that stands for this configured model
    preprocess: str | None = None  # ControlNet: what makes its control map
    description: str = ""


@dataclass(frozen=True)
class ResolvedAsset:
    """An asset named in a generation request, as the engine needs it."""

    name: str
    kind: str
    family: str
    path: str | None  # local file or folder; None for a checkpoint that stands for a configured model
    model_id: str | None = None
    preprocess: str | None = None  # ControlNet: what makes its control map
    trigger_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssetFilter:
    """Which assets a listing shows (``AssetService.listing``)."""

    scopes: tuple[str, ...]  # the scopes the caller may see (and asked for); empty: none
    name: str | None = None
    kinds: tuple[str, ...] = ()  # empty: every kind
    families: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0


def scope_of(key: Caller | None) -> str:
    """Whose private assets a caller sees: its API key's, or everyone's ``local`` with auth disabled."""
    return "local" if key is None else f"key:{key.id}"


def new_id() -> str:
    return f"asset_{uuid.uuid4().hex}"
