"""Files on local disk under one root; every path is resolved and must stay inside it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pixelserve.errors import NotFound, StorageUnavailable
from pixelserve.storage.base import check_object_key


@contextmanager
def _writing(tmp: Path):
    """A write that fails on the disk (full, read-only, I/O error) leaves no ``.part`` file behind and
    is the store being unavailable (503, retry later), not a bug."""
    try:
        yield
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: nothing was written there either
        raise StorageUnavailable(f"the image store refused a write ({e.strerror or e})") from e


class LocalImageStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / check_object_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise NotFound("no such image")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        tmp = path.with_name(path.name + ".part")
        with _writing(tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see a half-written image

    def put_fileobj(self, key: str, fileobj: BinaryIO, content_type: str) -> None:
        path = self._path(key)
        tmp = path.with_name(path.name + ".part")
        with _writing(tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as out:
                shutil.copyfileobj(fileobj, out, 1024 * 1024)
            os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound("no such image") from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound("no such file") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presigned_get(self, key: str, ttl_seconds: int) -> str | None:
        return None  # served by pixelserve's signed /v1/images route

    def presigned_put(self, key: str, ttl_seconds: int, content_type: str | None = None) -> str | None:
        return None  # taken by pixelserve's signed /v1/uploads route
