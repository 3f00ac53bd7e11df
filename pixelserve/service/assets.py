"""The asset library: named weights per scope, uploaded, validated, and resolved for requests.

Upload states: ``ready_to_upload`` -> (PUT to the signed URL) ``uploading`` -> ``uploaded`` ->
(complete) ``ready`` or ``rejected`` (the file is deleted; ``status_details`` says why). Every file
is checked by ``engine/weights/inspection.py`` (safetensors only, by content; names and widths fitting the
declared kind and the family's configured model) before anything may load it.

Public assets (scope ``public``) come from the model configuration (ControlNets, checkpoints
standing for configured models: ``ConfiguredAsset``s a dialect's config hands in; ``sync_config``)
or from an admin (``pixelserve assets add --public``); API keys create private ones only. Names
never become paths: files are ``<asset id>.safetensors`` in one folder, and every path is resolved
and checked to stay inside it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core.model_config import ModelsConfig, ModelSpec
from pixelserve.db.crud import assets as crud
from pixelserve.db.models_assets import KINDS, AssetRecord
from pixelserve.errors import Conflict, Forbidden, InvalidRequest, NotFound, NotSupported, PayloadTooLarge
from pixelserve.service.asset_refs import (ASSET_ID, PUBLIC, PUT_STATES, AssetFilter, ConfiguredAsset,
                                           ResolvedAsset, new_id)
from pixelserve.storage.base import ImageStore

log = logging.getLogger(__name__)

#: (file, kind, family, the family's model spec) -> raises ValueError with the reason it is refused.
Checker = Callable[[Path, str, str, ModelSpec], None]
#: (kind, family) -> the tiny demo adapter's path (engine/demo/tiny_adapters.py).
TinyBuilder = Callable[[str, str], Path]

#: (field, name as the request wrote it) -> resolve()'s keywords for it: name, public, kind, field, shown.
Lookup = Callable[[str, str], dict]


class LazyAssets(Mapping):
    """(field, name as written) -> the ResolvedAsset, resolved when first read (so a request's own
    field checks run first, and only the assets it uses are looked up)."""

    def __init__(self, service: "AssetService", scope: str, family: str, lookup: Lookup):
        self._service, self._scope, self._family, self._lookup = service, scope, family, lookup
        self._done: dict[tuple[str, str], ResolvedAsset] = {}

    def __getitem__(self, ref: tuple[str, str]) -> ResolvedAsset:
        if ref not in self._done:
            self._done[ref] = self._service.resolve(self._scope, family=self._family, **self._lookup(*ref))
        return self._done[ref]

    def __iter__(self):
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done)


class AssetService:
    def __init__(self, sessions: sessionmaker[Session], root: Path, models: ModelsConfig, cache_dir: Path, *,
                 max_bytes: int, checker: Checker | None = None, tiny_builder: TinyBuilder | None = None,
                 store: ImageStore | None = None, configured: Sequence[ConfiguredAsset] = (),
                 family_models: Mapping[str, str] | None = None):
        """``store``: where clients PUT asset files directly when it has pre-signed URLs (S3), and
        the durable copy of each uploaded asset; ``root`` keeps the local copy the engine loads.
        ``configured``: the public assets ``sync_config`` lists; ``family_models``: family -> the
        model an asset of that family is checked against (default: the family's first model)."""
        self.sessions = sessions
        self.store = store
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.models = models
        self.configured = tuple(configured)
        self.family_models = dict(family_models or {})
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self._checker = checker or self._engine_check
        self._tiny = tiny_builder or self._engine_tiny
        self._tiny_lock = threading.Lock()

    # -- files -------------------------------------------------------------------------------
    def file_of(self, asset_id: str) -> Path:
        if not ASSET_ID.fullmatch(asset_id or ""):
            raise NotFound("no such asset")
        path = (self.root / f"{asset_id}.safetensors").resolve()
        if not path.is_relative_to(self.root):
            raise NotFound("no such asset")
        return path

    @staticmethod
    def object_key(asset_id: str) -> str:
        """The asset's file in the store (S3)."""
        return f"assets/{asset_id}.safetensors"

    def store_put_url(self, asset_id: str, ttl_seconds: int) -> str | None:
        """A pre-signed PUT straight into the store (S3); None: the store has none (local disk)."""
        if self.store is None:
            return None
        # No signed Content-Type: clients (OctoAI's SDK among them) PUT with whatever header they send.
        return self.store.presigned_put(self.object_key(asset_id), ttl_seconds)

    def store_get_url(self, asset_id: str, ttl_seconds: int) -> str | None:
        if self.store is None:
            return None
        return self.store.presigned_get(self.object_key(asset_id), ttl_seconds)

    def _fetch_from_store(self, asset_id: str) -> bool:
        """Copy the asset's file from the store into ``root`` (streamed, size-capped); False: not there."""
        if self.store is None:
            return False
        try:
            source = self.store.open(self.object_key(asset_id))
        except NotFound:
            return False
        part = self.file_of(asset_id).with_suffix(f".{uuid.uuid4().hex}.part")
        try:
            size = 0
            with source, part.open("wb") as out:
                while chunk := source.read(1 << 20):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"asset files are limited to {self.max_bytes} bytes")
                    out.write(chunk)
            os.replace(part, self.file_of(asset_id))
        finally:
            part.unlink(missing_ok=True)
        return True

    def model_for(self, family: str) -> ModelSpec:
        """The model an asset of ``family`` is checked against: the one configured for the family, else its first."""
        specs = self.models.models
        mid = self.family_models.get(family)
        if mid in specs:
            return specs[mid]
        for spec in specs.values():
            if spec.family == family:
                return spec
        raise NotSupported(f"no {family} model is configured on this server")

    # -- create, upload, validate --------------------------------------------------------------
    def create(self, scope: str, *, name: str, kind: str, family: str, description: str = "",
               meta: dict | None = None) -> AssetRecord:
        if kind not in KINDS:
            raise NotSupported(f"asset kind {kind!r} is not served (one of {', '.join(KINDS)})")
        self.model_for(family)
        row = AssetRecord(id=new_id(), scope=scope, name=name, kind=kind, family=family, description=description,
                          meta=meta or {}, status="ready_to_upload", status_details="", size_bytes=0,
                          origin="upload")
        with self.sessions() as s:
            return crud.add(s, row)

    def begin_upload(self, asset_id: str, declared_length: int | None) -> Path:
        """The temporary file a PUT streams into (the asset turns ``uploading``)."""
        if declared_length is not None and declared_length > self.max_bytes:
            raise PayloadTooLarge(f"asset files are limited to {self.max_bytes} bytes")
        with self.sessions() as s:
            row = crud.by_id(s, asset_id)
            if row is None or row.origin != "upload":
                raise NotFound("no such asset")
            if row.status not in PUT_STATES:
                raise Conflict(f"the asset is {row.status}; its file can no longer be replaced")
            crud.update(s, asset_id, status="uploading")
        return self.file_of(asset_id).with_suffix(f".{uuid.uuid4().hex}.part")

    def end_upload(self, asset_id: str, part: Path, size: int) -> None:
        os.replace(part, self.file_of(asset_id))
        with self.sessions() as s:
            crud.update(s, asset_id, status="uploaded", size_bytes=size)

    def abort_upload(self, asset_id: str, part: Path) -> None:
        part.unlink(missing_ok=True)
        with self.sessions() as s:
            row = crud.by_id(s, asset_id)
            if row is not None and row.status == "uploading":
                done = self.file_of(asset_id).exists()
                crud.update(s, asset_id, status="uploaded" if done else "ready_to_upload")

    def complete(self, scope: str, asset_id: str) -> AssetRecord:
        row = self.owned(scope, asset_id)
        if row.status in ("ready", "rejected"):
            return row  # completing twice answers the same
        if row.status == "uploading":
            raise Conflict("the file is still being uploaded")
        if row.status == "ready_to_upload" and self._fetch_from_store(asset_id):  # PUT straight into S3
            with self.sessions() as s:
                crud.update(s, asset_id, status="uploaded", size_bytes=self.file_of(asset_id).stat().st_size)
            row.status = "uploaded"
        if row.status != "uploaded" or not self.file_of(asset_id).is_file():
            raise InvalidRequest("nothing was uploaded: PUT the file to the asset's put_url first", field="asset_id",
                                 location="path")
        return self.validate(asset_id)

    def validate(self, asset_id: str) -> AssetRecord:
        with self.sessions() as s:
            row = crud.by_id(s, asset_id)
        file = self.file_of(asset_id)
        try:
            self._checker(file, row.kind, row.family, self.model_for(row.family))
        except ValueError as e:
            file.unlink(missing_ok=True)  # refused bytes are not kept
            self._delete_stored(asset_id)
            status, details = "rejected", str(e)
        else:
            status, details = "ready", ""
            self._keep_in_store(asset_id, file)
        with self.sessions() as s:
            return crud.update(s, asset_id, status=status, status_details=details)

    def add_file(self, scope: str, source: Path, **fields) -> AssetRecord:
        """Create, copy and validate in one go (the admin CLI)."""
        source = Path(source)
        if source.stat().st_size > self.max_bytes:
            raise PayloadTooLarge(f"asset files are limited to {self.max_bytes} bytes")
        row = self.create(scope, **fields)
        part = self.begin_upload(row.id, None)
        shutil.copyfile(source, part)
        self.end_upload(row.id, part, source.stat().st_size)
        return self.validate(row.id)

    # -- read and delete ---------------------------------------------------------------------
    def get(self, scope: str, asset_id: str) -> AssetRecord:
        """An asset the caller may see (its own or a public one)."""
        with self.sessions() as s:
            row = crud.by_id(s, asset_id)
        if row is None or row.scope not in (scope, PUBLIC):
            raise NotFound("no such asset")
        return row

    def get_named(self, scope: str, owner: str, name: str) -> AssetRecord:
        if owner not in (scope, PUBLIC):
            raise NotFound("no such asset")
        with self.sessions() as s:
            row = crud.by_name(s, owner, name)
        if row is None:
            raise NotFound("no such asset")
        return row

    def owned(self, scope: str, asset_id: str) -> AssetRecord:
        row = self.get(scope, asset_id)
        if row.scope != scope:
            raise Forbidden("public assets are managed by an admin (pixelserve assets)")
        return row

    def listing(self, f: AssetFilter) -> tuple[list[AssetRecord], int]:
        with self.sessions() as s:
            return crud.listing(s, scopes=f.scopes, name=f.name, kinds=f.kinds, families=f.families, ids=f.ids,
                                limit=f.limit, offset=f.offset)

    def all_rows(self) -> list[AssetRecord]:
        """Every scope's assets (the admin CLI)."""
        with self.sessions() as s:
            return crud.in_scopes(s, None)

    def delete(self, asset_id: str) -> AssetRecord:
        with self.sessions() as s:
            row = crud.by_id(s, asset_id)
            if row is None:
                raise NotFound("no such asset")
            crud.remove(s, asset_id)
        if row.origin == "upload":
            self.file_of(asset_id).unlink(missing_ok=True)
            self._delete_stored(asset_id)
        return row

    def _keep_in_store(self, asset_id: str, file: Path) -> None:
        """The durable copy of a ready upload (API replicas on other machines fetch it from there)."""
        if self.store is not None and not self.store.exists(self.object_key(asset_id)):
            with file.open("rb") as f:
                self.store.put_fileobj(self.object_key(asset_id), f, "application/octet-stream")

    def _delete_stored(self, asset_id: str) -> None:
        if self.store is not None:
            self.store.delete(self.object_key(asset_id))

    # -- generation requests -----------------------------------------------------------------
    def resolve(self, scope: str, *, name: str, public: bool, kind: str, family: str, field: str,
                shown: str) -> ResolvedAsset:
        """The ready asset ``name`` (in the public library or the caller's) for the engine.

        Unknown or not ready: NotFound; another kind or family: InvalidRequest. ``shown`` is the
        name as the caller wrote it, for messages.
        """
        with self.sessions() as s:
            row = crud.by_name(s, PUBLIC if public else scope, name)
        if row is None:
            raise NotFound(f"no asset named {shown!r}", field=field)
        if row.status != "ready":
            raise NotFound(f"asset {shown!r} is not ready (status {row.status})", field=field)
        if row.kind != kind:
            raise InvalidRequest(f"asset {shown!r} is a {row.kind.replace('_', ' ')}, not a {kind.replace('_', ' ')}",
                                 field=field)
        if row.family != family:
            raise InvalidRequest(f"asset {shown!r} is for {row.family} models; this engine runs {family}", field=field)
        if row.origin == "upload":
            if not self.file_of(row.id).is_file() and not self._fetch_from_store(row.id):
                raise NotFound(f"asset {shown!r} has no file on this server", field=field)
            path = str(self.file_of(row.id))
        elif row.path is not None or row.model_id is not None:
            path = row.path
        else:
            path = str(self._tiny_adapter(kind, family))
        words = tuple((row.meta or {}).get("trigger_words") or ())
        return ResolvedAsset(name=name, kind=kind, family=family, path=path, model_id=row.model_id,
                             preprocess=row.preprocess, trigger_words=words)

    def lazy(self, scope: str, family: str, lookup: Lookup) -> LazyAssets:
        """The assets a request names, resolved on first use for ``scope`` and the model's ``family``."""
        return LazyAssets(self, scope, family, lookup)

    # -- the model configuration's public assets ------------------------------------------------
    def sync_config(self) -> None:
        """Public rows for the configured assets (added, updated, removed)."""
        wanted: dict[str, dict] = {}
        for a in self.configured:
            path = self.models.models[a.model_id].path if a.model_id is not None else a.path
            wanted[a.name] = dict(kind=a.kind, family=a.family, path=str(a.path) if a.path else None,
                                  model_id=a.model_id, preprocess=a.preprocess, size_bytes=_size(path),
                                  description=a.description)
        with self.sessions() as s:
            existing = {r.name: r for r in crud.in_scopes(s, (PUBLIC,))}
            for name, row in existing.items():
                if row.origin == "config" and name not in wanted:
                    crud.remove(s, row.id)
            for name, values in wanted.items():
                row = existing.get(name)
                if row is not None and row.origin != "config":
                    log.warning("public asset %s was added by an admin; the configured one is not listed", name)
                elif row is not None:
                    crud.update(s, row.id, **values)
                else:
                    try:
                        crud.add(s, AssetRecord(id=new_id(), scope=PUBLIC, name=name, meta={}, status="ready",
                                                status_details="", origin="config", **values))
                    except Conflict:  # another process synced it at the same moment
                        pass

    # -- engine hooks (lazy: the API process imports torch only when an asset is used) -----------
    def _engine_check(self, path: Path, kind: str, family: str, spec: ModelSpec) -> None:
        from pixelserve.engine.weights import inspection as asset_check

        asset_check.check_file(path, kind, family, asset_check.model_dims(spec, self.cache_dir))

    def _engine_tiny(self, kind: str, family: str) -> Path:
        try:
            from pixelserve.engine.demo.tiny_adapters import ensure_tiny_adapter
        except ImportError:
            raise NotSupported("the tiny demo adapters are not part of this build") from None
        return ensure_tiny_adapter(kind, family, self.cache_dir / "tiny")

    def _tiny_adapter(self, kind: str, family: str) -> Path:
        with self._tiny_lock:  # built once, on first use
            return self._tiny(kind, family)


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
