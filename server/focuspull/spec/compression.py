"""EXR compression names (pure Python: the job spec checks them without OpenImageIO)."""
from __future__ import annotations

from focuspull.errors import InputError

EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "htj2k",
                    "htj2k256", "htj2k32")
# OpenImageIO writes a name it does not know as zip, silently: "htj2k" alone is such a name,
# so it is spelled out as OpenEXR's HTJ2K with 256-line chunks.
_ALIASES = {"htj2k": "htj2k256"}


def check_compression(compression: str) -> str:
    """``compression`` lower-cased if it is an EXR compression, optionally with a level
    (``dwaa:45``, ``zip:6``), ``htj2k`` spelled ``htj2k256``; else :class:`InputError`
    listing the valid names."""
    text = str(compression).strip().lower()
    base, sep, level = text.partition(":")
    valid = base in EXR_COMPRESSIONS and (not sep or level.isdigit())
    if not valid:
        raise InputError(f"unknown EXR compression {compression!r}",
                         f"use one of: {', '.join(EXR_COMPRESSIONS)}, optionally with a level "
                         "(e.g. zip, or dwaa:45)")
    return _ALIASES.get(base, base) + sep + level


__all__ = ["EXR_COMPRESSIONS", "check_compression"]
