"""Channel-name vocabulary shared by the server and the host plug-ins (pure Python).

One list of the channel names taken as depth, used by :mod:`focuspull.io.channels` on the
server and by :mod:`focuspull.exr_lite` in the hosts' Pythons, so both sides pick the same
channel of the same file.
"""
from __future__ import annotations

# Depth channel names tried in this order when the user names none.  First the
# Nuke/EXR conventions (``Z`` of the main layer, then a ``depth`` layer as Nuke's
# ScanlineRender, Blender and Arnold write it), then common renderer spellings.
DEPTH_CHANNEL_CANDIDATES = (
    "Z", "depth.Z", "depth.z", "Depth.Z", "depth", "Depth", "depth.Y", "depth.R",
    "zDepth", "ZDepth", "Zdepth", "z", "depth.V", "Z.Z", "ViewLayer.Depth.Z",
)


def is_depth_like(name: str) -> bool:
    """Channels kept in float even when colour is written as half (half loses depth precision)."""
    base = name.rsplit(".", 1)[-1]
    return name in DEPTH_CHANNEL_CANDIDATES or base in ("Z", "z") or name.lower().startswith("depth")


__all__ = ["DEPTH_CHANNEL_CANDIDATES", "is_depth_like"]
