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
Anything else (:func:`supports` says) goes through OpenImageIO.  The file layout (OpenEXR's
file format document): magic, version, header attributes, a null byte, one 8-byte offset per
chunk, then each chunk as ``int32 y, int32 size, data``; a chunk's lines hold each channel's
row in the header's channel order; ZIP splits a chunk's bytes into even and odd halves, stores
successive differences + 128 and deflates that with a zlib wrapper, and a chunk that would not
get smaller is stored as it is.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib

import numpy as np

from focuspull.io.atomic import temp_path_for

try:  # libdeflate: OpenEXR's own ZIP coder, ~1.7x faster than zlib at the same level and size
    from deflate import zlib_compress as _deflate
except ImportError:  # pragma: no cover - the render extra installs it
    _deflate = zlib.compress

_MAGIC = 20000630
_NOT_SCANLINE = 0x200 | 0x800 | 0x1000  # tiled, deep, multi-part
# compression name -> (id in the header, scan lines per chunk)
_COMPRESSIONS = {"none": (0, 1), "zips": (2, 1), "zip": (3, 16)}
_ZIP_LEVEL = 4  # OpenEXR's default
_PIXEL_TYPES = {1: np.dtype("<f2"), 2: np.dtype("<f4")}  # OpenEXR's HALF, FLOAT


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


class _Header:
    """OpenImageIO's header for ``spec``: its bytes, the channels in file order and where
    the data window's ``ymax`` is stored."""

    def __init__(self, raw: bytes) -> None:
        if struct.unpack_from("<i", raw)[0] != _MAGIC or struct.unpack_from("<I", raw, 4)[0] & _NOT_SCANLINE:
            raise ValueError("OpenImageIO wrote no single-part scanline EXR header")
        pos, attrs = 8, {}
        while raw[pos]:
            name_end = raw.index(b"\0", pos)
            type_end = raw.index(b"\0", name_end + 1)
            size = struct.unpack_from("<i", raw, type_end + 1)[0]
            attrs[raw[pos:name_end].decode("utf-8", "replace")] = (type_end + 5, size)
            pos = type_end + 5 + size
        self.raw = bytearray(raw[:pos + 1])  # through the null byte that ends the header
        self.channels = []  # (name, pixel type)
        at, end = attrs["channels"][0], sum(attrs["channels"]) - 1
        while at < end:
            name_end = self.raw.index(b"\0", at)
            self.channels.append((self.raw[at:name_end].decode("utf-8", "replace"),
                                  struct.unpack_from("<i", self.raw, name_end + 1)[0]))
            at = name_end + 17  # name, null, pixel type, pLinear + 3 reserved, x and y sampling
        self.compression = self.raw[attrs["compression"][0]]
        self.line_order = self.raw[attrs["lineOrder"][0]] if "lineOrder" in attrs else 0
        self.data_window = attrs["dataWindow"][0]

    def set_last_row(self, ymax: int) -> None:
        struct.pack_into("<i", self.raw, self.data_window + 12, ymax)


def _oiio_header(spec, beside: str) -> _Header:
    """The header OpenImageIO writes for ``spec``: it writes a one-row image in the folder of
    ``beside`` under a temp name (a crash leaves what the temp sweep removes), read back and
    deleted."""
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
            return _Header(fh.read())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _zip_chunk(raw: np.ndarray, level: int) -> bytes:
    """One chunk's bytes as ZIP stores them (or as they are when that is no smaller)."""
    t = np.concatenate([raw[0::2], raw[1::2]])
    d = np.empty_like(t)
    d[0] = t[0]
    np.subtract(t[1:], t[:-1], out=d[1:])
    d[1:] += np.uint8(128)  # uint8 arithmetic wraps mod 256, as the format wants
    packed = _deflate(d, level)
    return packed if len(packed) < raw.size else raw.tobytes()


def write(path: str, pixels: np.ndarray, spec) -> bool:
    """Write ``pixels`` (``H x W x C`` float32, ``spec``'s channels) to ``path`` as OpenImageIO
    would write ``spec`` (which passes :func:`supports`).  False, with nothing written, when
    OpenImageIO's header is not one this can follow: the caller writes with OpenImageIO."""
    height, width, nchannels = pixels.shape
    if (height, width, nchannels) != (spec.height, spec.width, spec.nchannels):
        raise ValueError(f"pixels {pixels.shape} do not match the spec ({spec.height}, {spec.width}, "
                         f"{spec.nchannels})")
    name, level = _compression(spec)
    comp_id, lines = _COMPRESSIONS[name]
    index = {n: i for i, n in enumerate(spec.channelnames)}
    try:
        header = _oiio_header(spec, path)
    except (ValueError, OSError, IndexError, KeyError, struct.error):
        return False
    if (header.compression != comp_id or header.line_order != 0 or len(header.channels) != nchannels
            or any(n not in index or t not in _PIXEL_TYPES for n, t in header.channels)):
        return False
    header.set_last_row(spec.y + height - 1)
    # Every scan line: each channel's row, in the header's channel order, little-endian.
    types = [_PIXEL_TYPES[t] for _, t in header.channels]
    rows = np.empty((height, width * sum(t.itemsize for t in types)), np.uint8)
    at = 0
    with np.errstate(over="ignore"):  # beyond the half range is inf, as OpenEXR writes it
        for (channel, _), dtype in zip(header.channels, types):
            size = width * dtype.itemsize
            rows[:, at:at + size].view(dtype)[:] = pixels[:, :, index[channel]]
            at += size
    chunks = []
    for start in range(0, height, lines):
        raw = rows[start:start + lines].reshape(-1)
        data = _zip_chunk(raw, level) if comp_id else raw.tobytes()
        chunks += [struct.pack("<ii", spec.y + start, len(data)), data]
    offsets, at = [], len(header.raw) + 8 * (len(chunks) // 2)
    for data in chunks[1::2]:
        offsets.append(at)
        at += 8 + len(data)
    with open(path, "wb") as fh:
        fh.write(header.raw)
        fh.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        fh.writelines(chunks)
    return True


__all__ = ["supports", "write"]
