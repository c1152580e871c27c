"""Scanline EXRs written with the pixel work in numpy: the renderer's frames, fast.

OpenImageIO writes a float32 buffer into a file with mixed channel formats (half colour, 32-bit
depth: what the inputs hold, kept) value by value, channel by channel: 0.31-0.35 CPU-s for a
1080p RGBZ frame, the largest cost of ``focuspull render`` after the render itself.  Here the
same file is made with the channels converted in bulk and the chunks compressed by libdeflate:
0.105 CPU-s (BENCHMARKS.md).  The header is OpenImageIO's own -- it writes the same ``ImageSpec`` as a one-row
image, whose header differs from the whole image's only in the data window's last row, which
is set here -- so every attribute has the name and type OpenImageIO gives it.

Covered: single-part scanline files, half / float channels, ``none``, ``zips`` and ``zip``
(ZIP at OpenEXR's default level 4, or the level given, ``zip:6``), increasing line order.
Anything else (:func:`supports` says) goes through OpenImageIO.  The file layout -- header
parsing, scan lines, chunks and their offsets, the ZIP predictor -- is the hosts' EXR codec's
(:mod:`focuspull.exr_lite`), one implementation for both.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib

import numpy as np

from focuspull import exr_lite
from focuspull.io.atomic import temp_path_for

try:  # libdeflate: OpenEXR's own ZIP coder, ~1.7x faster than zlib at the same level and size
    from deflate import zlib_compress as _deflate
except ImportError:  # pragma: no cover - the render extra installs it
    _deflate = zlib.compress

# compression name -> id in the header (scan lines per chunk: exr_lite.file_parts knows them)
_COMPRESSIONS = {"none": 0, "zips": 2, "zip": 3}
_ZIP_LEVEL = 4  # OpenEXR's default
_HALF_OR_FLOAT = (1, 2)  # OpenEXR's pixel types HALF and FLOAT


def _compression(spec) -> tuple[str, int] | None:
    base, _, level = spec.get_string_attribute("compression", "zip").lower().partition(":")
    if base not in _COMPRESSIONS or (level and not level.isdigit()):
        return None
    return base, min(int(level), 9) if level else _ZIP_LEVEL


def supports(spec) -> bool:
    """Whether :func:`write` can write ``spec`` (an OpenImageIO ``ImageSpec`` for one part)."""
    formats = spec.channelformats or (spec.format,) * spec.nchannels
    return (spec.tile_width == 0 and spec.depth == 1 and not spec.deep and spec.nchannels > 0
            and all(str(f) in ("half", "float") for f in formats) and _compression(spec) is not None)


def _oiio_header(spec, beside: str) -> tuple[bytearray, dict]:
    """The header OpenImageIO writes for ``spec`` (its bytes and attributes, as
    :func:`focuspull.exr_lite.parse_header` gives them): it writes a one-row image in the
    folder of ``beside`` under a temp name (a crash leaves what the temp sweep removes), read
    back and deleted."""
    import OpenImageIO as oiio  # noqa: PLC0415 - the render extra

    stub = oiio.ImageSpec(spec)
    stub.height = 1  # the display window (full_*) stays as it was
    path = temp_path_for(os.path.join(os.path.dirname(beside), "focuspull-header.exr"))
    try:
        out = oiio.ImageOutput.create(path)
        if out is None:
            raise ValueError(oiio.geterror())
        try:
            if not (out.open(path, stub) and out.write_image(np.zeros((1, spec.width, spec.nchannels), np.float32))):
                raise ValueError(out.geterror())
        finally:
            out.close()
        with open(path, "rb") as fh:
            raw = fh.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    attrs, end = exr_lite.parse_header(raw, path)
    return bytearray(raw[:end]), attrs


def write(path: str, pixels: np.ndarray, spec) -> bool:
    """Write ``pixels`` (``H x W x C`` float32, ``spec``'s channels) to ``path`` as OpenImageIO
    would write ``spec`` (which passes :func:`supports`).  False, with nothing written, when
    OpenImageIO's header is not one this can follow: the caller writes with OpenImageIO."""
    height, width, nchannels = pixels.shape
    if (height, width, nchannels) != (spec.height, spec.width, spec.nchannels):
        raise ValueError(f"pixels {pixels.shape} do not match the spec ({spec.height}, {spec.width}, "
                         f"{spec.nchannels})")
    name, level = _compression(spec)
    index = {n: i for i, n in enumerate(spec.channelnames)}
    try:
        header, attrs = _oiio_header(spec, path)
        channels = exr_lite.channel_list(attrs["channels"][1], path)
        compression, line_order = attrs["compression"][1][0], attrs.get("lineOrder", ("", b"\0"))[1][0]
        window_at = attrs["dataWindow"][2]
    except (ValueError, OSError, KeyError, IndexError, exr_lite.ExrError):
        return False
    if (compression != _COMPRESSIONS[name] or line_order != 0 or len(channels) != nchannels
            or any(n not in index or t not in _HALF_OR_FLOAT for n, t in channels)):
        return False
    struct.pack_into("<i", header, window_at + 12, spec.y + height - 1)  # the data window's last row
    rows = exr_lite.scan_lines([pixels[:, :, index[n]] for n, _ in channels], [t for _, t in channels])
    parts = exr_lite.file_parts(bytes(header), rows, spec.y, compression, lambda data: _deflate(data, level))
    with open(path, "wb") as fh:
        fh.writelines(parts)
    return True


__all__ = ["supports", "write"]
