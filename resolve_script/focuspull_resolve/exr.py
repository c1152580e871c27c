"""A small OpenEXR reader/writer for Resolve's Python (numpy + zlib, no OpenImageIO).

Only what the scripts need for in-band jobs (the server cannot see the folder) and for
telling whether a clip carries depth: single-part scanline files, HALF / FLOAT / UINT
channels, compression NONE, ZIPS (1 line) or ZIP (16 lines) - what the scripts ask
Fusion's Saver and Resolve's render for.  Anything else (tiled, multi-part, PIZ, DWA...)
raises :class:`ExrError` saying which Saver / render setting to change.

Layout (openexr.com, "OpenEXR File Layout"): magic 20000630, version 2, a header of
``name\\0 type\\0 size value`` attributes ending in ``\\0``, one 64-bit offset per chunk,
then chunks ``y, size, data``; in a chunk, each scan line holds every channel in
alphabetical order.  ZIP data is zlib over bytes split into even/odd halves and
delta-coded (predictor + 128).
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib

import numpy as np

MAGIC = 20000630
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_LINES_PER_CHUNK = {0: 1, 2: 1, 3: 16}  # NONE, ZIPS, ZIP
_COMPRESSION_NAMES = {0: "none", 1: "rle", 2: "zips", 3: "zip", 4: "piz", 5: "pxr24", 6: "b44", 7: "b44a",
                      8: "dwaa", 9: "dwab"}
#: Channels taken as depth, in order of preference (the server finds the same ones).
DEPTH_CHANNELS = ("Z", "depth.Z", "depth.z", "depth", "Depth", "z")


class ExrError(Exception):
    """An EXR file this reader cannot read; the message says what to change."""


def _read_header(f):
    head = f.read(8)
    if len(head) < 8 or struct.unpack("<i", head[:4])[0] != MAGIC:
        raise ExrError(f"{f.name} is not an OpenEXR file")
    flags = struct.unpack("<I", head[4:])[0]
    if flags & 0x200 or flags & 0x1000 or flags & 0x800:
        raise ExrError(f"{f.name} is tiled, deep or multi-part; save a plain scanline EXR")
    attrs = {}
    while True:
        name = _cstring(f)
        if not name:
            break
        kind = _cstring(f)
        size = struct.unpack("<i", f.read(4))[0]
        attrs[name] = (kind, f.read(size))
    channels = []
    data = attrs["channels"][1]
    pos = 0
    while data[pos:pos + 1] != b"\x00":
        end = data.index(b"\x00", pos)
        cname = data[pos:end].decode()
        ptype, _linear, xs, ys = struct.unpack("<iB3xii", data[end + 1:end + 17])
        if (xs, ys) != (1, 1):
            raise ExrError(f"{f.name}: channel {cname} is subsampled; save full-resolution channels")
        channels.append((cname, ptype))
        pos = end + 17
    compression = attrs["compression"][1][0]
    xmin, ymin, xmax, ymax = struct.unpack("<4i", attrs["dataWindow"][1])
    return channels, compression, (xmin, ymin, xmax, ymax)


def _cstring(f) -> str:
    out = bytearray()
    while True:
        b = f.read(1)
        if not b or b == b"\x00":
            return out.decode("latin-1")
        out += b
        if len(out) > 255:
            raise ExrError(f"{f.name}: header name longer than 255 bytes (not an EXR?)")


def channel_names(path: str) -> list[str]:
    """The channel names of an EXR (header only)."""
    with open(path, "rb") as f:
        return [name for name, _ in _read_header(f)[0]]


def find_depth_channel(names) -> str | None:
    for candidate in DEPTH_CHANNELS:
        if candidate in names:
            return candidate
    return None


def _unzip(data: bytes, expected: int) -> bytes:
    raw = np.frombuffer(zlib.decompress(data), np.uint8)
    if raw.size != expected:
        raise ExrError(f"ZIP chunk holds {raw.size} bytes, expected {expected}")
    # undo the predictor: t[i] = t[i-1] + d[i] - 128 (mod 256), a running sum in uint8
    d = raw - np.uint8(128)
    d[0] = raw[0]
    t = np.cumsum(d, dtype=np.uint8)
    half = (expected + 1) // 2
    out = np.empty(expected, np.uint8)
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


def _zip(raw: bytes) -> bytes:
    b = np.frombuffer(raw, np.uint8)
    t = np.concatenate([b[0::2], b[1::2]])
    d = t.copy()
    d[1:] = t[1:] - t[:-1] + np.uint8(128)  # wraps mod 256, as the format wants
    return zlib.compress(d.tobytes(), 4)


def read_exr(path: str) -> dict[str, np.ndarray]:
    """``{channel name: H x W float32}`` of a scanline EXR (NONE / ZIPS / ZIP)."""
    with open(path, "rb") as f:
        channels, compression, (xmin, ymin, xmax, ymax) = _read_header(f)
        if compression not in _LINES_PER_CHUNK:
            raise ExrError(f"{path} uses {_COMPRESSION_NAMES.get(compression, compression)} compression; "
                           "set the Saver / render to ZIP or no compression")
        width, height = xmax - xmin + 1, ymax - ymin + 1
        lines = _LINES_PER_CHUNK[compression]
        n_chunks = (height + lines - 1) // lines
        offsets = struct.unpack(f"<{n_chunks}Q", f.read(8 * n_chunks))
        dtypes = [_PIXEL_TYPES[p] for _, p in channels]
        line_bytes = sum(width * d.itemsize for d in dtypes)
        planes = {name: np.empty((height, width), np.float32) for name, _ in channels}
        for offset in offsets:
            f.seek(offset)
            y, size = struct.unpack("<ii", f.read(8))
            data = f.read(size)
            n = min(lines, ymax + 1 - y)
            expected = n * line_bytes
            if size < expected:
                data = _unzip(data, expected) if compression else data
            pos = 0
            for row in range(y - ymin, y - ymin + n):
                for (name, _), dtype in zip(channels, dtypes):
                    step = width * dtype.itemsize
                    planes[name][row] = np.frombuffer(data, dtype, width, pos)
                    pos += step
    return planes


def write_exr(path: str, planes: dict[str, np.ndarray], *, half: bool = True) -> str:
    """Write ``{name: H x W}`` as a ZIP-compressed scanline EXR, atomically.

    Colour is half float when ``half``; depth channels always stay 32-bit float."""
    names = sorted(planes)
    height, width = np.asarray(planes[names[0]]).shape
    types = [2 if (not half or find_depth_channel([n]) == n) else 1 for n in names]
    chlist = b"".join(n.encode() + b"\x00" + struct.pack("<iB3xii", t, 0, 1, 1) for n, t in zip(names, types))
    chlist += b"\x00"

    def attr(name, kind, value):
        return name.encode() + b"\x00" + kind.encode() + b"\x00" + struct.pack("<i", len(value)) + value

    box = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = (struct.pack("<iI", MAGIC, 2) + attr("channels", "chlist", chlist)
              + attr("compression", "compression", bytes([3])) + attr("dataWindow", "box2i", box)
              + attr("displayWindow", "box2i", box) + attr("lineOrder", "lineOrder", bytes([0]))
              + attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + attr("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0))
              + attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\x00")
    arrays = [np.asarray(planes[n], _PIXEL_TYPES[t]) for n, t in zip(names, types)]
    chunks = []
    for y in range(0, height, 16):
        raw = b"".join(a[row].tobytes() for row in range(y, min(y + 16, height)) for a in arrays)
        packed = _zip(raw)
        data = packed if len(packed) < len(raw) else raw
        chunks.append(struct.pack("<ii", y, len(data)) + data)
    table_at = len(header)
    offset = table_at + 8 * len(chunks)
    offsets = []
    for c in chunks:
        offsets.append(offset)
        offset += len(c)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".exr", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(struct.pack(f"<{len(offsets)}Q", *offsets))
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
