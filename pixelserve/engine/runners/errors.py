"""One way to send an error across a process boundary: the supervised worker's pipe and Ray Serve.

An error travels as plain values, ``(class name, message, field)``: a PixelserveError's keyword
fields do not survive pickling. The receiving side rebuilds the same PixelserveError class; any
other exception (a bug) becomes an EngineFailure that names it.
"""

from __future__ import annotations

from typing import Sequence

from pixelserve import errors
from pixelserve.errors import EngineFailure, PixelserveError

Packed = tuple[str, str, "str | None"]


def pack(error: Exception) -> Packed:
    if isinstance(error, PixelserveError):
        return type(error).__name__, error.message, error.field
    return type(error).__name__, str(error), None


def unpack(packed: Sequence) -> Exception:
    name, message, field_name = packed
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, PixelserveError):
        return cls(message, field=field_name)
    return EngineFailure(f"generation failed: {name}: {message}")
