"""A small OpenEXR codec in numpy, for the in-band path (the node process has no OpenImageIO).

When the server cannot see the cache folder, the node reads the frames its hidden Write
rendered and sends the pixels in-band, then writes the frames the server sends back so
the group's Read can show them.  Nuke's Python has no image I/O of its own, and the node
must not load OpenImageIO, so this reads and writes the subset of EXR that path needs:

* read: single-part scanline files, HALF / FLOAT / UINT channels, compression NONE,
  RLE, ZIPS (Nuke's "Zip (1 scanline)") and ZIP ("Zip (16 scanlines)");
* write: FLOAT or HALF channels, compression NONE, atomically (temp file + rename).

Pixels are ``H x W`` float32 planes of the data window, by channel name.  Anything else
(tiles, multi-part, deep, PIZ/DWA, sub-sampled channels) is refused with a message that
says which Write setting to use.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = 20000630
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_COMPRESSIONS = {0: ("none", 1), 1: ("rle", 1), 2: ("zips", 1), 3: ("zip", 16)}
_HINT = "set the hidden Write to EXR, scanline, 'Zip (1 scanline)' or 'none' compression"


class ExrError(ValueError):
    """A file this codec cannot read (message says why and what to change)."""


@dataclass
class ExrImage:
    channels: dict = field(default_factory=dict)  #: name -> H x W float32 (data window)
    data_window: tuple = (0, 0, 0, 0)  #: xmin, ymin, xmax, ymax (inclusive)
    display_window: tuple = (0, 0, 0, 0)

    @property
    def height(self) -> int:
        return self.data_window[3] - self.data_window[1] + 1

    @property
    def width(self) -> int:
        return self.data_window[2] - self.data_window[0] + 1

    def full_frame(self, name: str) -> np.ndarray:
        """Channel ``name`` placed in the display window (zeros outside the data window)."""
        dx0, dy0, dx1, dy1 = self.display_window
        out = np.zeros((dy1 - dy0 + 1, dx1 - dx0 + 1), np.float32)
        x0, y0, x1, y1 = self.data_window
        plane = self.channels[name]
        # Intersect the data window with the display window.
        ix0, iy0, ix1, iy1 = max(x0, dx0), max(y0, dy0), min(x1, dx1), min(y1, dy1)
        if ix0 <= ix1 and iy0 <= iy1:
            out[iy0 - dy0:iy1 - dy0 + 1, ix0 - dx0:ix1 - dx0 + 1] = \
                plane[iy0 - y0:iy1 - y0 + 1, ix0 - x0:ix1 - x0 + 1]
        return out


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _read_header(buf: bytes, path: str):
    if len(buf) < 8 or struct.unpack_from("<i", buf, 0)[0] != MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file", _HINT)
    version = struct.unpack_from("<I", buf, 4)[0]
    if version & 0x1A00:  # tiled (0x200), deep (0x800), multi-part (0x1000)
        raise ExrError(f"{path} is a tiled, deep or multi-part EXR; only scanline files are read here", _HINT)
    pos, attrs = 8, {}
    while True:
        name, pos = _cstr(buf, pos)
        if not name:
            return attrs, pos
        kind, pos = _cstr(buf, pos)
        size = struct.unpack_from("<i", buf, pos)[0]
        pos += 4
        attrs[name] = (kind, buf[pos:pos + size])
        pos += size


def _channels(raw: bytes):
    out, pos = [], 0
    while raw[pos:pos + 1] != b"\0":
        name, pos = _cstr(raw, pos)
        ptype, _linear, xs, ys = struct.unpack_from("<iB3xii", raw, pos)
        pos += 16
        out.append((name, ptype, xs, ys))
    return out


def _unpredict(raw: np.ndarray) -> bytes:
    """Undo the ZIP/RLE byte predictor (t[i] = t[i-1] + d[i] - 128) and the split of
    even / odd bytes into two halves."""
    d = raw - np.uint8(128)  # wraps mod 256, as the predictor does
    d[0] = raw[0]  # the first byte is stored as is
    t = np.cumsum(d, dtype=np.uint8)  # uint8 arithmetic wraps mod 256
    half = (t.size + 1) // 2
    out = np.empty_like(t)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _undo_zip(data: bytes, expected: int) -> bytes:
    raw = np.frombuffer(zlib.decompress(data), np.uint8)
    if raw.size != expected:
        raise ExrError(f"a ZIP block decoded to {raw.size} bytes, expected {expected}", _HINT)
    return _unpredict(raw)


def _undo_rle(data: bytes, expected: int) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(data):
        n = struct.unpack_from("<b", data, pos)[0]
        if n < 0:
            out += data[pos + 1:pos + 1 - n]
            pos += 1 - n
        else:
            out += data[pos + 1:pos + 2] * (n + 1)
            pos += 2
    if len(out) != expected:
        raise ExrError(f"an RLE block decoded to {len(out)} bytes, expected {expected}", _HINT)
    return _unpredict(np.frombuffer(bytes(out), np.uint8))


def read_exr(path: str) -> ExrImage:
    """Read a scanline EXR (see the module docstring for what is supported)."""
    with open(path, "rb") as fh:
        buf = fh.read()
    attrs, pos = _read_header(buf, path)
    try:
        chans = _channels(attrs["channels"][1])
        comp_id = attrs["compression"][1][0]
        dw = struct.unpack("<4i", attrs["dataWindow"][1])
        disp = struct.unpack("<4i", attrs["displayWindow"][1])
    except KeyError as exc:
        raise ExrError(f"{path} lacks the required EXR attribute {exc.args[0]}", _HINT) from None
    if comp_id not in _COMPRESSIONS:
        raise ExrError(f"{path} uses EXR compression #{comp_id}; this reader takes none, RLE, ZIPS and ZIP", _HINT)
    for name, ptype, xs, ys in chans:
        if ptype not in _PIXEL_TYPES or xs != 1 or ys != 1:
            raise ExrError(f"{path}: channel {name} is sub-sampled or of unknown type {ptype}", _HINT)
    comp, lines_per_block = _COMPRESSIONS[comp_id]
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    line_bytes = sum(_PIXEL_TYPES[p].itemsize for _, p, _, _ in chans) * width
    blocks = (height + lines_per_block - 1) // lines_per_block
    offsets = struct.unpack_from(f"<{blocks}Q", buf, pos)
    lines = np.empty((height, line_bytes), np.uint8)  # every scanline, channels side by side
    for offset in offsets:
        y, size = struct.unpack_from("<ii", buf, offset)
        data = buf[offset + 8:offset + 8 + size]
        row0 = y - dw[1]
        rows = min(lines_per_block, height - row0)
        expected = rows * line_bytes
        if row0 < 0 or rows < 1:
            raise ExrError(f"{path}: a block starts at line {y}, outside the data window", "render the frame again")
        if comp != "none" and size < expected:
            data = _undo_zip(data, expected) if comp in ("zip", "zips") else _undo_rle(data, expected)
        if len(data) != expected:
            raise ExrError(f"{path}: block at line {y} holds {len(data)} bytes, expected {expected} "
                           "(truncated file?)", "render the frame again")
        lines[row0:row0 + rows] = np.frombuffer(data, np.uint8).reshape(rows, line_bytes)
    planes, at = {}, 0
    for name, ptype, _, _ in chans:  # within a line: each channel's row, in chlist order
        dt = _PIXEL_TYPES[ptype]
        n = width * dt.itemsize
        planes[name] = np.ascontiguousarray(lines[:, at:at + n]).view(dt).astype(np.float32)
        at += n
    return ExrImage(planes, tuple(dw), tuple(disp))


def pixel_digest(path: str) -> str:
    """A hash of a scanline EXR's pixels as stored (the chunks) with its channel list, windows
    and compression, without decoding: header attributes such as times or the writer's
    name do not change it.  Same pixels written the same way = same digest."""
    with open(path, "rb") as fh:
        buf = fh.read()
    attrs, pos = _read_header(buf, path)
    h = hashlib.sha256()
    for key in ("channels", "compression", "dataWindow", "displayWindow", "lineOrder"):
        if key not in attrs:
            raise ExrError(f"{path} lacks the required EXR attribute {key}", _HINT)
        h.update(key.encode() + b"\0" + attrs[key][1])
    dw = struct.unpack("<4i", attrs["dataWindow"][1])
    comp = attrs["compression"][1][0]
    if comp not in _COMPRESSIONS:
        raise ExrError(f"{path} uses EXR compression #{comp}; this reader takes none, RLE, ZIPS and ZIP", _HINT)
    blocks = (dw[3] - dw[1] + 1 + _COMPRESSIONS[comp][1] - 1) // _COMPRESSIONS[comp][1]
    h.update(memoryview(buf)[pos + 8 * blocks:])  # the chunks, not the offset table
    return h.hexdigest()


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(path: str, channels: dict, *, half: bool = False, display_window=None) -> str:
    """Write ``{name: H x W float}`` planes as an uncompressed scanline EXR, atomically.

    Depth-like channels (``Z``, ``depth.*``) stay FLOAT even with ``half`` (half would
    quantise far depth).  ``display_window`` defaults to the data window at 0, 0."""
    names = sorted(channels)
    if not names:
        raise ExrError(f"no channels to write to {path}", "pass at least one channel")
    planes = [np.asarray(channels[n], np.float32) for n in names]
    height, width = planes[0].shape
    if any(p.shape != (height, width) for p in planes):
        raise ExrError(f"channels for {path} differ in size", "pass planes of one size")
    types = [2 if (not half or n == "Z" or n.lower().startswith("depth")) else 1 for n in names]
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", t, 0, 1, 1) for n, t in zip(names, types)) + b"\0"
    dw = (0, 0, width - 1, height - 1)
    disp = tuple(display_window) if display_window is not None else dw
    header = struct.pack("<iI", MAGIC, 2) + b"".join([
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", b"\0"),
        _attr("dataWindow", "box2i", struct.pack("<4i", *dw)),
        _attr("displayWindow", "box2i", struct.pack("<4i", *disp)),
        _attr("lineOrder", "lineOrder", b"\0"),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    typed = [p.astype("<f4" if t == 2 else "<f2") for p, t in zip(planes, types)]
    line_bytes = sum(p.dtype.itemsize for p in typed) * width
    table_at = len(header)
    first_chunk = table_at + 8 * height
    offsets = struct.pack(f"<{height}Q", *(first_chunk + y * (8 + line_bytes) for y in range(height)))
    # One scanline per chunk: [y, size, channel rows in name order].
    rows = np.concatenate([p.view(np.uint8).reshape(height, -1) for p in typed], axis=1)
    prefix = np.frombuffer(b"".join(struct.pack("<ii", y, line_bytes) for y in range(height)), np.uint8)
    body = np.concatenate([prefix.reshape(height, 8), rows], axis=1).tobytes()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fp_tmp_", suffix=".exr", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header + offsets + body)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
