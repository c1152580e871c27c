"""A small OpenEXR codec in numpy + zlib, for host Pythons that must not load OpenImageIO.

Nuke's and Resolve's Pythons have no image I/O of their own, and the plug-ins must not load
OpenImageIO or torch.  When the render server cannot see a folder they read the frames
themselves and send the pixels in-band, then write the frames that come back; Resolve also
asks a file whether it carries depth.  This module reads and writes the subset of EXR those
paths need:

* read: single-part scanline files, HALF / FLOAT / UINT channels, compression NONE, RLE,
  ZIPS ("Zip (1 scanline)") and ZIP ("Zip (16 scanlines)");
* write: FLOAT or HALF channels, compression ZIP or NONE, atomically (temp file + rename);
  depth channels stay FLOAT when colour is written as HALF (half quantises far depth).

Anything else (tiles, multi-part, deep, PIZ / PXR24 / B44 / DWA, sub-sampled channels) raises
:class:`ExrError`.  Its hint names the setting to change in general terms; a host passes
``hint=`` to say it in its own words (the Write node's settings, the Saver / render settings).

Layout (openexr.com, "OpenEXR File Layout"): magic 20000630, version 2, a header of
``name\\0 type\\0 size value`` attributes ending in ``\\0``, one 64-bit offset per chunk, then
chunks ``y, size, data``; in a chunk, each scan line holds every channel's row in channel-list
(alphabetical) order.  ZIP and RLE data split bytes into even / odd halves and delta-code them
(predictor + 128); ZIP is zlib over that.

Imports only numpy, zlib, the standard library, :mod:`focuspull.errors` and :mod:`focuspull.spec`
(checked by the "host-facing" import-linter contract).
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from focuspull.errors import InputError
from focuspull.spec.vocabulary import DEPTH_CHANNEL_CANDIDATES, is_depth_like

MAGIC = 20000630
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
#: compression id -> (name, scan lines per chunk), for the ones read here.
_COMPRESSIONS = {0: ("none", 1), 1: ("rle", 1), 2: ("zips", 1), 3: ("zip", 16)}
_COMPRESSION_NAMES = {0: "none", 1: "rle", 2: "zips", 3: "zip", 4: "piz", 5: "pxr24", 6: "b44", 7: "b44a",
                      8: "dwaa", 9: "dwab", 10: "htj2k"}
_WRITE_COMPRESSIONS = {"none": 0, "zip": 3}
#: The general hint; hosts pass their own words with ``hint=``.
DEFAULT_HINT = "write a single-part scanline EXR with ZIP, ZIPS, RLE or no compression"
_AGAIN = "render or write the frame again"


class ExrError(InputError):
    """An EXR this codec cannot read or write; ``message`` says what is wrong, ``hint`` what to change."""

    code = "bad_exr"


@dataclass
class ExrImage:
    """The pixels of a scanline EXR."""

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
        ix0, iy0, ix1, iy1 = max(x0, dx0), max(y0, dy0), min(x1, dx1), min(y1, dy1)
        if ix0 <= ix1 and iy0 <= iy1:
            out[iy0 - dy0:iy1 - dy0 + 1, ix0 - dx0:ix1 - dx0 + 1] = \
                plane[iy0 - y0:iy1 - y0 + 1, ix0 - x0:ix1 - x0 + 1]
        return out


def find_depth_channel(names) -> str | None:
    """The first of :data:`~focuspull.spec.vocabulary.DEPTH_CHANNEL_CANDIDATES` in ``names``
    (the server picks the same one), or None."""
    for candidate in DEPTH_CHANNEL_CANDIDATES:
        if candidate in names:
            return candidate
    return None


# -- header ---------------------------------------------------------------------------------------
class _Incomplete(Exception):
    """The header runs past the bytes read so far."""


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(b"\0", pos, pos + 256)
    if end < 0:
        if len(buf) - pos < 256:
            raise _Incomplete
        raise ExrError("an EXR header name is longer than 255 bytes (not an EXR?)", _AGAIN)
    return buf[pos:end].decode("latin-1"), end + 1


def _parse_header(buf: bytes, path: str, hint: str) -> tuple[dict, int]:
    """``({name: (type, value bytes, offset of the value)}, offset of the chunk table)``;
    _Incomplete when ``buf`` ends inside the header."""
    if len(buf) < 8:
        if len(buf) == 0 or buf[:4] == struct.pack("<i", MAGIC)[:len(buf[:4])]:
            raise _Incomplete
        raise ExrError(f"{path} is not an OpenEXR file", hint)
    if struct.unpack_from("<i", buf, 0)[0] != MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file", hint)
    version = struct.unpack_from("<I", buf, 4)[0]
    if version & 0x1A00:  # tiled (0x200), deep (0x800), multi-part (0x1000)
        raise ExrError(f"{path} is a tiled, deep or multi-part EXR; only single-part scanline files are read",
                       hint)
    pos, attrs = 8, {}
    while True:
        name, pos = _cstr(buf, pos)
        if not name:
            return attrs, pos
        kind, pos = _cstr(buf, pos)
        if pos + 4 > len(buf):
            raise _Incomplete
        size = struct.unpack_from("<i", buf, pos)[0]
        pos += 4
        if size < 0:
            raise ExrError(f"{path}: EXR attribute {name} has a negative size (damaged file?)", _AGAIN)
        if pos + size > len(buf):
            raise _Incomplete
        attrs[name] = (kind, buf[pos:pos + size], pos)
        pos += size


def _read_header(fh, path: str, hint: str, buf: bytes = b"") -> tuple[dict, int, bytes]:
    """Parse the header from ``buf``, reading more of ``fh`` (None: ``buf`` is the whole file)
    only as the header needs: ``(attrs, table offset, bytes read)``."""
    step = 1 << 16
    while True:
        try:
            attrs, pos = _parse_header(buf, path, hint)
            return attrs, pos, buf
        except _Incomplete:
            more = fh.read(step) if fh is not None else b""
            if not more:
                raise ExrError(f"{path} ends inside its EXR header (truncated file?)", _AGAIN) from None
            buf += more
            step *= 2


def parse_header(buf: bytes, path: str, hint: str = DEFAULT_HINT) -> tuple[dict, int]:
    """The header at the start of ``buf`` (a whole file, or at least its header):
    ``({name: (type, value bytes, offset of the value)}, offset of the chunk table)``;
    :class:`ExrError` for a file this codec does not read (tiled, deep, multi-part, cut short)."""
    attrs, pos, _ = _read_header(None, path, hint, buf)
    return attrs, pos


def channel_list(raw: bytes, path: str, hint: str = DEFAULT_HINT) -> list[tuple[str, int]]:
    """``[(name, pixel type)]`` of a ``chlist`` attribute's value, in file order."""
    out, pos = [], 0
    while raw[pos:pos + 1] != b"\0":
        if pos >= len(raw):
            raise ExrError(f"{path}: the EXR channel list is damaged", _AGAIN)
        end = raw.index(b"\0", pos)
        name = raw[pos:end].decode("latin-1")
        ptype, _linear, xs, ys = struct.unpack_from("<iB3xii", raw, end + 1)
        if ptype not in _PIXEL_TYPES or (xs, ys) != (1, 1):
            raise ExrError(f"{path}: channel {name} is sub-sampled or of unknown pixel type {ptype}", hint)
        out.append((name, ptype))
        pos = end + 17
    return out


def _layout(attrs: dict, path: str, hint: str):
    """``(channels, compression id, data window, display window)``, checked."""
    try:
        chans = channel_list(attrs["channels"][1], path, hint)
        comp = attrs["compression"][1][0]
        dw = struct.unpack("<4i", attrs["dataWindow"][1])
        disp = struct.unpack("<4i", attrs["displayWindow"][1])
    except KeyError as exc:
        raise ExrError(f"{path} lacks the required EXR attribute {exc.args[0]}", hint) from None
    if comp not in _COMPRESSIONS:
        raise ExrError(f"{path} uses {_COMPRESSION_NAMES.get(comp, f'#{comp}')} compression; "
                       "this reader takes none, RLE, ZIPS and ZIP", hint)
    return chans, comp, dw, disp


def channel_names(path: str, *, hint: str = DEFAULT_HINT) -> list[str]:
    """The channel names of an EXR, in file order (reads the header only)."""
    with open(path, "rb") as fh:
        attrs, _pos, _buf = _read_header(fh, path, hint)
    if "channels" not in attrs:
        raise ExrError(f"{path} lacks the required EXR attribute channels", hint)
    return [name for name, _ in channel_list(attrs["channels"][1], path, hint)]


# -- pixels ---------------------------------------------------------------------------------------
def _unpredict(raw: np.ndarray) -> bytes:
    """Undo the ZIP/RLE predictor (t[i] = t[i-1] + d[i] - 128) and the even/odd byte split."""
    d = raw - np.uint8(128)  # wraps mod 256, as the predictor does
    d[0] = raw[0]  # the first byte is stored as is
    t = np.cumsum(d, dtype=np.uint8)  # uint8 arithmetic wraps mod 256
    half = (t.size + 1) // 2
    out = np.empty_like(t)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _predict(raw) -> np.ndarray:
    """The ZIP predictor over ``raw`` (bytes or a 1-D uint8 array): split even / odd bytes,
    then delta + 128."""
    b = np.frombuffer(raw, np.uint8)
    t = np.concatenate([b[0::2], b[1::2]])
    d = np.empty_like(t)
    d[:1] = t[:1]
    np.subtract(t[1:], t[:-1], out=d[1:])
    d[1:] += np.uint8(128)  # uint8 arithmetic wraps mod 256, as the format wants
    return d


def _undo_zip(data: bytes, expected: int, where: str) -> bytes:
    try:
        raw = np.frombuffer(zlib.decompress(data), np.uint8)
    except zlib.error as exc:
        raise ExrError(f"{where}: ZIP data is damaged ({exc})", _AGAIN) from None
    if raw.size != expected:
        raise ExrError(f"{where}: a ZIP chunk decoded to {raw.size} bytes, expected {expected}", _AGAIN)
    return _unpredict(raw)


def _undo_rle(data: bytes, expected: int, where: str) -> bytes:
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
        raise ExrError(f"{where}: an RLE chunk decoded to {len(out)} bytes, expected {expected}", _AGAIN)
    return _unpredict(np.frombuffer(bytes(out), np.uint8))


def read_exr(path: str, *, hint: str = DEFAULT_HINT) -> ExrImage:
    """Read a scanline EXR (see the module docstring for what is supported).

    ``hint`` is said with errors about the file's kind (compression, tiles, channel types);
    a damaged or truncated file says to write the frame again."""
    with open(path, "rb") as fh:
        buf = fh.read()
    attrs, pos, _ = _read_header(None, path, hint, buf)
    chans, comp_id, dw, disp = _layout(attrs, path, hint)
    comp, lines_per_chunk = _COMPRESSIONS[comp_id]
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    if width < 1 or height < 1:
        raise ExrError(f"{path} has an empty data window {dw}", _AGAIN)
    line_bytes = sum(_PIXEL_TYPES[p].itemsize for _, p in chans) * width
    chunks = (height + lines_per_chunk - 1) // lines_per_chunk
    if pos + 8 * chunks > len(buf):
        raise ExrError(f"{path} ends inside its chunk table (truncated file?)", _AGAIN)
    offsets = struct.unpack_from(f"<{chunks}Q", buf, pos)
    lines = np.empty((height, line_bytes), np.uint8)  # every scan line, channels side by side
    for offset in offsets:
        if offset + 8 > len(buf):
            raise ExrError(f"{path}: a chunk lies past the end of the file (truncated file?)", _AGAIN)
        y, size = struct.unpack_from("<ii", buf, offset)
        data = buf[offset + 8:offset + 8 + size]
        row0 = y - dw[1]
        rows = min(lines_per_chunk, height - row0)
        expected = rows * line_bytes
        if row0 < 0 or rows < 1:
            raise ExrError(f"{path}: a chunk starts at line {y}, outside the data window", _AGAIN)
        if size < 0 or len(data) != size:
            raise ExrError(f"{path}: the chunk at line {y} is cut short (truncated file?)", _AGAIN)
        if comp != "none" and size < expected:
            where = f"{path} line {y}"
            data = _undo_zip(data, expected, where) if comp in ("zip", "zips") else \
                _undo_rle(data, expected, where)
        if len(data) != expected:
            raise ExrError(f"{path}: the chunk at line {y} holds {len(data)} bytes, expected {expected} "
                           "(truncated file?)", _AGAIN)
        lines[row0:row0 + rows] = np.frombuffer(data, np.uint8).reshape(rows, line_bytes)
    planes, at = {}, 0
    for name, ptype in chans:  # within a line: each channel's row, in channel-list order
        dt = _PIXEL_TYPES[ptype]
        n = width * dt.itemsize
        planes[name] = np.ascontiguousarray(lines[:, at:at + n]).view(dt).astype(np.float32)
        at += n
    return ExrImage(planes, tuple(dw), tuple(disp))


def pixel_digest(path: str, *, hint: str = DEFAULT_HINT) -> str:
    """A hash of a scanline EXR's pixels as stored (the chunks) with its channel list, windows
    and compression, without decoding: header attributes such as times or the writer's name
    do not change it.  Same pixels written the same way = same digest."""
    with open(path, "rb") as fh:
        buf = fh.read()
    attrs, pos, _ = _read_header(None, path, hint, buf)
    h = hashlib.sha256()
    for key in ("channels", "compression", "dataWindow", "displayWindow", "lineOrder"):
        if key not in attrs:
            raise ExrError(f"{path} lacks the required EXR attribute {key}", hint)
        h.update(key.encode() + b"\0" + attrs[key][1])
    _chans, comp, dw, _disp = _layout(attrs, path, hint)
    lines = _COMPRESSIONS[comp][1]
    chunks = (dw[3] - dw[1] + 1 + lines - 1) // lines
    h.update(memoryview(buf)[pos + 8 * chunks:])  # the chunks, not the offset table
    return h.hexdigest()


# -- writing --------------------------------------------------------------------------------------
def scan_lines(planes: list, pixel_types: list) -> np.ndarray:
    """Every scan line's bytes (``H x line bytes`` uint8): each ``H x W`` plane's row in the
    given order, converted to its EXR pixel type (1 HALF, 2 FLOAT; beyond half's range is inf)."""
    dtypes = [_PIXEL_TYPES[t] for t in pixel_types]
    height, width = planes[0].shape
    rows = np.empty((height, width * sum(dt.itemsize for dt in dtypes)), np.uint8)
    at = 0
    with np.errstate(over="ignore"):
        for plane, dt in zip(planes, dtypes):
            rows[:, at:at + width * dt.itemsize].view(dt)[:] = plane
            at += width * dt.itemsize
    return rows


def file_parts(header: bytes, rows: np.ndarray, y0: int, comp_id: int, compress=None) -> list:
    """The whole file, in pieces to write in order: ``header`` (through its closing null),
    the chunk offsets, then the chunks of ``rows`` (:func:`scan_lines`; the first is line
    ``y0``) for compression ``comp_id`` (none, ZIPS or ZIP); ``compress`` deflates with a zlib
    wrapper (default: zlib at level 4).  A chunk that would not get smaller is stored as is."""
    compress = compress or (lambda data: zlib.compress(data, 4))
    lines = _COMPRESSIONS[comp_id][1]
    chunks = []
    for start in range(0, rows.shape[0], lines):
        raw = rows[start:start + lines].reshape(-1)
        data = raw.tobytes()
        if comp_id:
            packed = compress(_predict(raw))
            data = packed if len(packed) < len(data) else data
        chunks += [struct.pack("<ii", y0 + start, len(data)), data]
    offsets, at = [], len(header) + 8 * (len(chunks) // 2)
    for data in chunks[1::2]:
        offsets.append(at)
        at += 8 + len(data)
    return [header, struct.pack(f"<{len(offsets)}Q", *offsets), *chunks]


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(path: str, channels: dict, *, half: bool = True, compression: str = "zip",
              display_window=None) -> str:
    """Write ``{name: H x W}`` planes as a scanline EXR, atomically; returns ``path``.

    ``half`` writes colour as 16-bit float; depth channels (``Z``, ``depth.*``, see
    :func:`focuspull.spec.vocabulary.is_depth_like`) stay 32-bit.  ``compression`` is
    ``"zip"`` (16 lines a chunk) or ``"none"``.  ``display_window`` (xmin, ymin, xmax, ymax)
    defaults to the data window, which starts at 0, 0."""
    if compression not in _WRITE_COMPRESSIONS:
        raise ExrError(f"cannot write {path} with {compression!r} compression",
                       f"use one of {', '.join(sorted(_WRITE_COMPRESSIONS))}")
    names = sorted(channels)
    if not names:
        raise ExrError(f"no channels to write to {path}", "pass at least one channel")
    planes = [np.asarray(channels[n], np.float32) for n in names]
    if planes[0].ndim != 2 or 0 in planes[0].shape:
        raise ExrError(f"channel {names[0]} for {path} has shape {planes[0].shape}", "pass H x W planes")
    height, width = planes[0].shape
    bad = [n for n, p in zip(names, planes) if p.shape != (height, width)]
    if bad:
        raise ExrError(f"channels {', '.join(bad)} for {path} differ in size from {names[0]} "
                       f"({height} x {width})", "pass planes of one size")
    types = [2 if (not half or is_depth_like(n)) else 1 for n in names]
    comp_id = _WRITE_COMPRESSIONS[compression]
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", t, 0, 1, 1) for n, t in zip(names, types)) + b"\0"
    dw = (0, 0, width - 1, height - 1)
    disp = tuple(int(v) for v in display_window) if display_window is not None else dw
    header = struct.pack("<iI", MAGIC, 2) + b"".join([
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", bytes([comp_id])),
        _attr("dataWindow", "box2i", struct.pack("<4i", *dw)),
        _attr("displayWindow", "box2i", struct.pack("<4i", *disp)),
        _attr("lineOrder", "lineOrder", b"\0"),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    # Every scan line: each channel's row in name order.
    rows = scan_lines(planes, types)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fp_tmp_", suffix=".exr", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.writelines(file_parts(header, rows, 0, comp_id))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


__all__ = ["DEFAULT_HINT", "ExrError", "ExrImage", "channel_names", "find_depth_channel", "pixel_digest",
           "read_exr", "write_exr"]
