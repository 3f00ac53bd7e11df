"""A1111's names for the configured models: ``/sd-models`` entries and ``sd_model_checkpoint`` values.

A checkpoint's ``title`` is ``"<model id> [<short hash>]"`` (A1111: ``"file.safetensors [abcd123456]"``),
``model_name`` the pixelserve model id, ``hash`` the first 10 hex digits of the weights file's
SHA-256 (A1111's "shorthash"), ``filename`` the file's or folder's own name, never a server path.
A diffusers folder or a demo model has no single file to hash: its hash and sha256 are null and its
title is the bare id, as A1111 titles a checkpoint it has not hashed yet.

``resolve`` takes what clients send as ``sd_model_checkpoint``: a title, an id, a filename (with or
without its extension), a short hash or a full SHA-256; an unknown one is a 400 naming the field
(A1111 answers 500 ``model 'x' not found``).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from pixelserve.core.model_config import ModelsConfig, ModelSpec
from pixelserve.errors import InvalidRequest

#: The families A1111 clients can generate with (txt2img / img2img); unCLIP (Karlo) takes none of
#: A1111's sampling fields.
FAMILIES = ("sd", "sdxl")
SHORT_HASH = 10
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    model_id: str
    filename: str
    sha256: str | None

    @property
    def hash(self) -> str | None:
        return self.sha256[:SHORT_HASH] if self.sha256 else None

    @property
    def title(self) -> str:
        return f"{self.model_id} [{self.hash}]" if self.hash else self.model_id

    def wire(self) -> dict:
        """One ``/sd-models`` entry (A1111's ``SDModelItem``)."""
        return {"title": self.title, "model_name": self.model_id, "hash": self.hash, "sha256": self.sha256,
                "filename": self.filename, "config": None}

    def names(self) -> set[str]:
        """Every string that names this checkpoint, lower-cased."""
        out = {self.model_id, self.title, self.filename, Path(self.filename).stem}
        if self.sha256:
            out |= {self.sha256, self.hash}
        return {n.lower() for n in out}


class CheckpointTable:
    """The configured sd/sdxl models as A1111 checkpoints. Single files are hashed once, on first use
    (off the event loop: call ``list``/``resolve`` from a thread), and again only if the file changed."""

    def __init__(self, specs: list[ModelSpec]):
        self._specs = {s.id: s for s in specs if s.family in FAMILIES}
        self._hashes: dict[str, tuple[tuple[int, int], str]] = {}  # id -> ((size, mtime_ns), sha256)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, models: ModelsConfig) -> "CheckpointTable":
        return cls(list(models.models.values()))

    def _sha256(self, spec: ModelSpec) -> str | None:
        if spec.path is None or not spec.path.is_file():
            return None
        try:
            stat = spec.path.stat()
        except OSError:
            return None
        stamp = (stat.st_size, stat.st_mtime_ns)
        with self._lock:  # one hashing at a time: a file is never read twice at once
            known = self._hashes.get(spec.id)
            if known is None or known[0] != stamp:
                known = self._hashes[spec.id] = (stamp, file_sha256(spec.path))
            return known[1]

    def get(self, model_id: str) -> Checkpoint:
        spec = self._specs[model_id]
        filename = spec.path.name if spec.path is not None else spec.id
        return Checkpoint(spec.id, filename, self._sha256(spec))

    def list(self) -> list[Checkpoint]:
        return [self.get(mid) for mid in self._specs]

    def list_ids(self) -> list[str]:
        """The checkpoints' model ids in configuration order (no hashing)."""
        return list(self._specs)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._specs

    def title_of(self, model_id: str) -> str:
        """The title of a served model id (the id itself for one that is no A1111 checkpoint)."""
        return self.get(model_id).title if model_id in self._specs else model_id

    def resolve(self, name: str, field: str = "sd_model_checkpoint") -> str:
        """The model id a client's checkpoint name, title or hash means; InvalidRequest naming ``field``."""
        wanted = name.strip().lower() if isinstance(name, str) else ""
        if wanted in {m.lower() for m in self._specs}:  # an id: no hashing needed
            return next(m for m in self._specs if m.lower() == wanted)
        for checkpoint in self.list():
            names = checkpoint.names()
            # A1111 also matches a title whose "[hash]" differs (closest_checkpoint_match)
            if wanted in names or wanted.partition(" [")[0] in names:
                return checkpoint.model_id
        known = ", ".join(repr(c) for c in self._specs) or "none"
        raise InvalidRequest(f"model {name!r} not found; checkpoints: {known} (see /sdapi/v1/sd-models)",
                             field=field)


def get_checkpoints(request: Request) -> CheckpointTable:
    return request.app.state.a1111_checkpoints


#: Route dependency: the app's checkpoint table (router.mount puts it on ``app.state``).
Checkpoints = Annotated[CheckpointTable, Depends(get_checkpoints)]
