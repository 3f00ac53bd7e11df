"""Studio's styles and collections: the caller's own, beside the built-in read-only styles."""

from __future__ import annotations

from typing import Any

from pixelserve.db.crud import studio as crud
from pixelserve.errors import NotFound


class StudioLibrary:
    """Part of StudioService (service/studio.py): needs its ``_db`` and ``load_reference``."""

    _db: Any
    _reference_key: Any
    load_reference: Any

    def styles(self, owner_id: int) -> list:
        return self._db(crud.list_styles, owner_id)

    def style(self, owner_id: int, style_id: int, field_name: str = "styleId"):
        return _found(self._db(crud.get_style, owner_id, style_id), f"no style {style_id}", field_name)

    def save_style(self, owner_id: int, values: dict, style_id: int | None = None):
        return _found(self._db(crud.save_style, owner_id, values, style_id),
                      f"no style {style_id} of yours (built-in styles are read-only)")

    def delete_style(self, owner_id: int, style_id: int) -> None:
        if not self._db(crud.delete_style, owner_id, style_id):
            raise NotFound(f"no style {style_id} of yours (built-in styles are read-only)")

    def collections(self, owner_id: int) -> list:
        return self._db(crud.list_collections, owner_id)

    def collection(self, owner_id: int, collection_id: int, field_name: str = "collectionId"):
        return _found(self._db(crud.get_collection, owner_id, collection_id), f"no collection {collection_id}",
                      field_name)

    def save_collection(self, owner_id: int, values: dict, collection_id: int | None = None):
        if values.get("style_id") is not None:
            self.style(owner_id, values["style_id"])
        for i, path in enumerate(values.get("images", ())):
            self._reference_key(owner_id, path, f"images.{i}")
            self.load_reference(owner_id, path, f"images.{i}")  # exists and is a readable image
        return _found(self._db(crud.save_collection, owner_id, values, collection_id),
                      f"no collection {collection_id}")

    def delete_collection(self, owner_id: int, collection_id: int) -> None:
        if not self._db(crud.delete_collection, owner_id, collection_id):
            raise NotFound(f"no collection {collection_id}")


def _found(row, missing: str, field_name: str | None = None):
    """``row``, or NotFound saying ``missing`` (the caller has no such row)."""
    if row is None:
        raise NotFound(missing, field=field_name)
    return row
