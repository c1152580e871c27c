"""Image-sequence IO: patterns and ranges, transfer functions, OIIO read/write, preflight, previews.

``from focuspull.io import SequencePattern, read_image, ...``.  Names from
``frames``, ``transfer``, ``channels`` and ``atomic`` need only numpy; the
OpenImageIO- and PyAV-backed names (``read_image``, ``write_image``,
``preflight``, ``PreviewWriter``...) load their module on first use, so host
Pythons can build frame lists without those libraries.  Nothing here imports torch.
See docs/io.md.
"""
from __future__ import annotations

from importlib import import_module

from focuspull.io.atomic import atomic_output, is_temp_path, remove_stale_temp_files, temp_path_for
from focuspull.io.channels import DEPTH_CHANNEL_CANDIDATES, find_depth_channel
from focuspull.spec.compression import EXR_COMPRESSIONS, check_compression
from focuspull.io.frames import SequencePattern, format_frame_ranges, parse_frame_range
from focuspull.io.transfer import TRANSFER_NAMES, default_transfer_for, from_linear, to_linear

_LAZY = {
    "Image": "images", "read_image": "images", "read_header": "images", "write_image": "images",
    "is_complete_frame": "images",
    "metadata_from_spec": "metadata", "timecode_to_string": "metadata", "timecode_from_string": "metadata",
    "preflight": "preflight", "SequenceInfo": "preflight",
    "PreviewWriter": "preview",
}

__all__ = [
    "SequencePattern", "parse_frame_range", "format_frame_ranges",
    "TRANSFER_NAMES", "to_linear", "from_linear", "default_transfer_for",
    "DEPTH_CHANNEL_CANDIDATES", "find_depth_channel",
    "atomic_output", "temp_path_for", "is_temp_path", "remove_stale_temp_files",
    "EXR_COMPRESSIONS", "check_compression",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'focuspull.io' has no attribute {name!r}")
    value = getattr(import_module(f"focuspull.io.{module}"), name)
    globals()[name] = value
    return value
