"""One file per model family; each exposes a ``Family`` subclass."""

from __future__ import annotations

from pixelserve.engine.families.base import Family


def family_for(name: str) -> Family:
    from pixelserve.engine.families.sd import SDFamily
    from pixelserve.engine.families.sdxl import SDXLFamily
    from pixelserve.engine.families.unclip import UnCLIPFamily

    families = {"sd": SDFamily(), "sdxl": SDXLFamily(), "unclip": UnCLIPFamily()}
    return families[name]
