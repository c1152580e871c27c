"""Channel names: which channel holds depth, which hold colour, which alpha.

Pure Python (no OpenImageIO).
"""
from __future__ import annotations

import os

from focuspull.errors import SequenceError
from focuspull.spec.vocabulary import DEPTH_CHANNEL_CANDIDATES, is_depth_like

# In a file that holds only depth (a separate depth sequence, e.g. a 16-bit PNG from
# a depth estimator) the grey or red channel is the depth too.
DEPTH_ONLY_FALLBACK = ("Y", "R")
_COLOUR = frozenset({"R", "G", "B", "Y", "r", "g", "b", "y", "red", "green", "blue"})
_ALPHA = frozenset({"A", "a", "alpha"})


def _file_label(path: str | None) -> str:
    return os.path.basename(path) if path else "the image"


def find_depth_channel(channel_names, requested: str | None = None, *, path: str | None = None,
                       depth_only: bool = False) -> str:
    """The name of the channel holding depth.

    Args:
        channel_names: the channels of the file.
        requested: the user's ``--depth-channel``; must be present exactly.
        path: the file, named in error messages.
        depth_only: the file is a separate depth sequence: after
            :data:`DEPTH_CHANNEL_CANDIDATES`, accept ``Y``, ``R`` or the only channel.

    Raises:
        SequenceError: naming the file and the channels that are there.
    """
    names = list(channel_names)
    listed = ",".join(names) if names else "(none)"
    if requested:
        if requested in names:
            return requested
        folded = [n for n in names if n.lower() == requested.lower()]
        suggestion = f" (did you mean {folded[0]!r}?)" if len(folded) == 1 else ""
        raise SequenceError(
            f"depth channel {requested!r} not found in {_file_label(path)}; channels are {listed}{suggestion}",
            "pass --depth-channel NAME with one of those channels")
    for name in DEPTH_CHANNEL_CANDIDATES:
        if name in names:
            return name
    if depth_only:
        if len(names) == 1:
            return names[0]
        for name in DEPTH_ONLY_FALLBACK:
            if name in names:
                return name
    raise SequenceError(
        f"no depth channel found in {_file_label(path)}; channels are {listed} "
        f"(looked for {', '.join(DEPTH_CHANNEL_CANDIDATES[:5])}, ...)",
        "pass --depth-channel NAME, or give a separate depth sequence with --depth")


def is_alpha_channel(name: str) -> bool:
    """``A``, ``alpha`` or a layer's alpha (``diffuse.A``)."""
    return name.rsplit(".", 1)[-1] in _ALPHA


def is_colour_channel(name: str) -> bool:
    """R, G, B, Y of the main layer or any layer; these get the transfer function.

    Depth, alpha, ids and other data channels are never gamma-decoded.
    """
    return name.rsplit(".", 1)[-1] in _COLOUR and not is_depth_like(name)


__all__ = ["DEPTH_CHANNEL_CANDIDATES", "DEPTH_ONLY_FALLBACK", "find_depth_channel",
           "is_alpha_channel", "is_colour_channel", "is_depth_like"]
