"""The focuspull wire protocol: versioned msgpack headers + raw array frames.

No torch, no sockets: pure functions that turn messages into ZeroMQ multipart
frames and back, with strict validation.  Both the server (``focuspull.service``)
and the host-side client (``focuspull.client``) use it, so it must import only
numpy and msgpack.

A message is a list of frames::

    frame 0     msgpack map  {"v": 1, "type": "...", ..., "arrays": [{"dtype", "shape"}, ...]}
    frame 1..n  raw little-endian C-order array bytes, one per "arrays" entry

Arrays are decoded zero-copy (``np.frombuffer`` over the received frame, which
the array keeps alive).  Never pickle: the header is plain msgpack with no ext
types, and array bytes are interpreted only through a whitelisted dtype.
See docs/protocol.md for every message and field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import msgpack
import numpy as np

from focuspull.errors import FocuspullError, ProtocolError, InternalError

PROTOCOL_VERSION = 1

# dtype names on the wire -> explicit little-endian numpy dtypes (the wire is LE
# whatever the host is, so a big-endian host still reads the right numbers).
DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}
MAX_NDIM = 3  # H x W x C is the largest thing we move
MAX_DIM = 32768  # 32k pixels a side; also bounds the channel count
MAX_CHANNELS = 16


def _error_classes() -> dict[str, type[FocuspullError]]:
    found: dict[str, type[FocuspullError]] = {}
    pending: list[type[FocuspullError]] = [FocuspullError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_class(code: str) -> type[FocuspullError]:
    """The exception class for a wire error ``code`` (``FocuspullError`` if unknown)."""
    # Looked up lazily so subclasses defined after import (errors.py grows) are found.
    return _error_classes().get(code, FocuspullError)


def error_from_fields(fields: Mapping[str, Any]) -> FocuspullError:
    """Rebuild the exception a server error reply describes."""
    cls = error_class(str(fields.get("code", "error")))
    exc = cls.__new__(cls)
    field = fields.get("field")
    FocuspullError.__init__(exc, str(fields.get("message", "")), str(fields.get("hint", "")),
                            field=field if isinstance(field, str) else None)
    return exc


def error_fields(exc: BaseException) -> dict[str, str]:
    """Fields of an ``error`` message for any exception (non-focuspull ones are 'internal')."""
    if isinstance(exc, FocuspullError):
        fields = {"code": exc.code, "message": exc.message, "hint": exc.hint}
        if exc.field:
            fields["field"] = exc.field  # the job field at fault: hosts name it as their knob
        return fields
    return {
        "code": InternalError.code,
        "message": f"{type(exc).__name__}: {exc}",
        "hint": "this is a server bug; the server log has the traceback — please report it",
    }


# --- limits ---------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What one side accepts from the other.  The server announces its own in ``welcome``."""

    max_message_bytes: int = 512 * 2**20  # whole multipart message
    max_header_bytes: int = 1 * 2**20  # frame 0
    max_arrays: int = 4096  # extra frames in one message
    max_str_len: int = 64 * 1024
    max_items: int = 100_000  # any one msgpack array or map

    def unpack_options(self) -> dict[str, Any]:
        # unpackb bounds the buffer by its length; the header size is checked before.
        return dict(
            raw=False,
            strict_map_key=True,
            max_str_len=self.max_str_len,
            max_bin_len=self.max_str_len,
            max_array_len=self.max_items,
            max_map_len=self.max_items,
            max_ext_len=0,
            ext_hook=_refuse_ext,
        )


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} in a header",
                        "headers hold plain maps, lists, strings and numbers only")


# --- field schemas ----------------------------------------------------------------

def _is_int(x: Any) -> bool:
    """an integer"""
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    """a finite number"""
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _short_str(x: Any) -> bool:
    """a string of 1..128 characters"""
    return isinstance(x, str) and 0 < len(x) <= 128


def _str(x: Any) -> bool:
    """a string"""
    return isinstance(x, str)


def _bool(x: Any) -> bool:
    """true or false"""
    return isinstance(x, bool)


def _map(x: Any) -> bool:
    """a map"""
    return isinstance(x, dict)


def _list(x: Any) -> bool:
    """a list"""
    return isinstance(x, list)


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def optional(x: Any) -> bool:
        return x is None or check(x)

    optional.__doc__ = f"{check.__doc__} or nil"
    return optional


def _index_list(x: Any) -> bool:
    """a list of integers"""
    return isinstance(x, list) and all(_is_int(i) for i in x)


# Every message type: field -> (check, required).  "v", "type", "arrays" and
# "token" are common to all and handled by decode().  Anything else is refused.
_COMMON_REQ = {"id": (_short_str, True)}
_JOB = {"job": (_short_str, True)}
SCHEMAS: dict[str, dict[str, tuple[Callable[[Any], bool], bool]]] = {
    # client -> server
    "hello": {**_COMMON_REQ, "client": (_opt(_str), False)},
    "ping": dict(_COMMON_REQ),
    "submit": {**_COMMON_REQ, "job": (_map, True), "inband": (_opt(_list), False),
               "echo": (_opt(_bool), False)},
    "cancel": {**_COMMON_REQ, **_JOB},
    "status": dict(_COMMON_REQ),
    "jobs": dict(_COMMON_REQ),
    "heartbeat": {},
    # server -> client
    "welcome": {"re": (_opt(_str), True), "server": (_str, True), "protocol": (_is_int, True),
                "devices": (_list, True), "stages": (_list, True), "models": (_list, True),
                "limits": (_map, True)},
    "pong": {"re": (_opt(_str), True), "time": (_is_num, True)},
    "accepted": {"re": (_opt(_str), True), **_JOB, "position": (_is_int, True)},
    "progress": {**_JOB, "frame": (_is_int, True), "done": (_is_int, True), "total": (_is_int, True),
                 "fps": (_opt(_is_num), True), "eta_s": (_opt(_is_num), True), "path": (_opt(_str), True)},
    "result": {**_JOB, "frame": (_is_int, True)},
    "done": {**_JOB, "rendered": (_index_list, True), "skipped": (_index_list, True),
             "elapsed_s": (_is_num, True)},
    "error": {"re": (_opt(_str), False), "job": (_opt(_str), False), "code": (_str, True),
              "message": (_str, True), "hint": (_str, True), "field": (_opt(_str), False)},
    "cancelling": {"re": (_opt(_str), True), **_JOB, "state": (_str, True)},
    "status_reply": {"re": (_opt(_str), True), "uptime_s": (_is_num, True), "queued": (_is_int, True),
                     "running": (_list, True), "workers": (_list, True), "clients": (_is_int, True)},
    "jobs_reply": {"re": (_opt(_str), True), "jobs": (_list, True)},
}
CLIENT_TYPES = frozenset({"hello", "ping", "submit", "cancel", "status", "jobs", "heartbeat"})
SERVER_TYPES = frozenset(SCHEMAS) - CLIENT_TYPES | {"heartbeat"}
_ENVELOPE = ("v", "type", "arrays", "token")


@dataclass
class Message:
    """A decoded message: ``type``, its fields (without the envelope) and its arrays."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    token: str | None = None


# --- encode ---------------------------------------------------------------------

def encode(msg_type: str, fields: Mapping[str, Any] | None = None,
           arrays: Sequence[np.ndarray] = (), token: str | None = None) -> list:
    """Frames for one message.  Array frames are the arrays' own buffers (no copy) when
    they are already little-endian and C-contiguous; pass the list to ``send_multipart``
    with ``copy=False`` to keep it that way."""
    if msg_type not in SCHEMAS:
        raise ProtocolError(f"unknown message type {msg_type!r}",
                            f"types are {', '.join(sorted(SCHEMAS))}")
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": msg_type}
    header.update(fields or {})
    if token is not None:
        header["token"] = token
    bufs = []
    descs = []
    for a in arrays:
        a = np.asarray(a)
        name = next((n for n, d in DTYPES.items() if d == a.dtype.newbyteorder("<")
                     or d == a.dtype), None)
        if name is None:
            raise ProtocolError(f"array dtype {a.dtype} cannot travel on the wire",
                                f"convert to one of {', '.join(DTYPES)}")
        a = np.ascontiguousarray(a, dtype=DTYPES[name])
        descs.append({"dtype": name, "shape": list(a.shape)})
        bufs.append(memoryview(a).cast("B") if a.size else b"")
    if descs:
        header["arrays"] = descs
    return [msgpack.packb(header, use_bin_type=True), *bufs]


def message_bytes(frames: Sequence[Any]) -> int:
    """Total size of a list of frames (bytes, memoryviews or zmq.Frame)."""
    total = 0
    for f in frames:
        total += len(f.buffer) if hasattr(f, "buffer") else memoryview(f).nbytes
    return total


# --- decode ---------------------------------------------------------------------

def _buffer(frame: Any) -> memoryview:
    # zmq.Frame (copy=False) exposes .buffer; bytes/memoryview are their own buffer.
    return frame.buffer if hasattr(frame, "buffer") else memoryview(frame)


def decode_header(frame: Any, limits: Limits = Limits()) -> dict[str, Any]:
    """Unpack frame 0 with the unpack limits; checks only that it is a map with v + type."""
    buf = _buffer(frame)
    if buf.nbytes > limits.max_header_bytes:
        raise ProtocolError(f"header of {buf.nbytes} bytes exceeds the limit of "
                            f"{limits.max_header_bytes}", "send large data as array frames")
    try:
        header = msgpack.unpackb(buf, **limits.unpack_options())
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many kinds; all mean "not a valid header"
        raise ProtocolError(f"header is not valid msgpack ({type(exc).__name__}: {exc})",
                            "frame 0 must be one msgpack map; see docs/protocol.md") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header is a msgpack {type(header).__name__}, not a map",
                            "frame 0 must be one msgpack map; see docs/protocol.md")
    v = header.get("v")
    if v != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {v!r} is not supported (this side speaks "
                            f"{PROTOCOL_VERSION})", "upgrade the older of client and server")
    if not isinstance(header.get("type"), str):
        raise ProtocolError("header has no string field 'type'",
                            "every message names its type; see docs/protocol.md")
    return header


def _array_desc(d: Any, i: int) -> tuple[np.dtype, tuple[int, ...]]:
    if not isinstance(d, dict) or set(d) != {"dtype", "shape"}:
        raise ProtocolError(f"arrays[{i}] must be a map with exactly 'dtype' and 'shape', got {d!r:.200}",
                            "describe each array frame as {dtype, shape}")
    dtype = DTYPES.get(d["dtype"]) if isinstance(d["dtype"], str) else None
    if dtype is None:
        raise ProtocolError(f"arrays[{i}] dtype {d['dtype']!r:.50} is not allowed",
                            f"use one of {', '.join(DTYPES)}")
    shape = d["shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= MAX_NDIM
            or not all(_is_int(s) and 0 <= s <= MAX_DIM for s in shape)):
        raise ProtocolError(f"arrays[{i}] shape {shape!r:.100} is invalid",
                            f"1 to {MAX_NDIM} dimensions of 0..{MAX_DIM} each")
    if len(shape) == 3 and shape[2] > MAX_CHANNELS:
        raise ProtocolError(f"arrays[{i}] has {shape[2]} channels", f"at most {MAX_CHANNELS}")
    return dtype, tuple(shape)


def decode(frames: Sequence[Any], limits: Limits = Limits(), *,
           expect: frozenset[str] = CLIENT_TYPES) -> Message:
    """Decode and validate one message.  Raises ``ProtocolError`` on anything odd.

    ``expect`` is the set of types this side accepts (server: ``CLIENT_TYPES``).
    Arrays are zero-copy views of the frames; each array holds a reference to its frame.
    """
    if not frames:
        raise ProtocolError("empty message", "send a msgpack header frame")
    total = message_bytes(frames)
    if total > limits.max_message_bytes:
        raise ProtocolError(f"message of {total} bytes exceeds the limit of {limits.max_message_bytes}",
                            "send fewer frames per job, or raise --max-message-mb on the server")
    header = decode_header(frames[0], limits)
    msg_type = header["type"]
    if msg_type not in expect:
        raise ProtocolError(f"unexpected message type {msg_type!r:.60}",
                            f"this side accepts {', '.join(sorted(expect))}")
    token = header.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError("token must be a string", "pass the token as text")
    schema = SCHEMAS[msg_type]
    unknown = set(header) - set(schema) - set(_ENVELOPE)
    if unknown:
        raise ProtocolError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]} in "
                            f"'{msg_type}'", f"'{msg_type}' takes {', '.join(sorted(schema)) or 'no fields'}")
    for name, (check, required) in schema.items():
        if name not in header:
            if required:
                raise ProtocolError(f"'{msg_type}' is missing field '{name}'",
                                    "see docs/protocol.md for the fields of each message")
            continue
        if not check(header[name]):
            raise ProtocolError(f"field '{name}' of '{msg_type}' has a wrong type or value "
                                f"({type(header[name]).__name__})",
                                f"expected {check.__doc__}; see docs/protocol.md")
    descs = header.get("arrays", [])
    if not isinstance(descs, list) or len(descs) > limits.max_arrays:
        raise ProtocolError("'arrays' must be a list of at most "
                            f"{limits.max_arrays} descriptions", "one {dtype, shape} per extra frame")
    if len(descs) != len(frames) - 1:
        raise ProtocolError(f"header describes {len(descs)} arrays but {len(frames) - 1} array "
                            "frames came", "send exactly one frame per 'arrays' entry")
    arrays = []
    for i, (d, frame) in enumerate(zip(descs, frames[1:])):
        dtype, shape = _array_desc(d, i)
        buf = _buffer(frame)
        want = math.prod(shape) * dtype.itemsize
        if buf.nbytes != want:
            raise ProtocolError(f"arrays[{i}] declares {shape} {d['dtype']} = {want} bytes but its "
                                f"frame has {buf.nbytes}", "the frame must hold exactly the array bytes")
        arrays.append(np.frombuffer(buf, dtype=dtype).reshape(shape))
    fields = {k: v for k, v in header.items() if k not in _ENVELOPE}
    return Message(msg_type, fields, arrays, token)


# --- in-band frame tables -----------------------------------------------------------

def inband_table(frames: Mapping[int, Mapping[str, np.ndarray]]) -> tuple[list[dict], list[np.ndarray]]:
    """``{frame: {"rgba": img, "depth": z}}`` -> (``inband`` field, arrays) for ``submit``.

    ``depth`` may be left out when the job estimates depth with a model (``depth.kind`` =
    ``"model"``); the server asks for it otherwise.
    """
    table, arrays = [], []
    for n in sorted(frames):
        if "rgba" not in frames[n]:
            raise ProtocolError(f"in-band frame {n} has no 'rgba'",
                                "give each frame an 'rgba' image (and a 'depth' array unless a model makes it)")
        extra = set(frames[n]) - {"rgba", "depth"}
        if extra:
            raise ProtocolError(f"in-band frame {n} has unknown keys {sorted(extra)}",
                                "only 'rgba' and 'depth'")
        entry: dict[str, int] = {"frame": int(n)}
        for key in ("rgba", "depth"):
            if key in frames[n]:
                entry[key] = len(arrays)
                arrays.append(frames[n][key])
        table.append(entry)
    return table, arrays


def inband_frames(table: list, arrays: list[np.ndarray], *, max_frames: int) -> dict[int, dict[str, np.ndarray]]:
    """Inverse of :func:`inband_table`, validating indices, shapes and dtypes."""
    if len(table) > max_frames:
        raise ProtocolError(f"{len(table)} in-band frames exceed the limit of {max_frames}",
                            "split the shot into several jobs or raise --max-frames")
    out: dict[int, dict[str, np.ndarray]] = {}
    used: set[int] = set()
    for i, entry in enumerate(table):
        if (not isinstance(entry, dict) or set(entry) not in ({"frame", "rgba", "depth"}, {"frame", "rgba"})
                or not all(_is_int(entry[k]) for k in entry)):
            raise ProtocolError(f"inband[{i}] must be a map of ints {{frame, rgba[, depth]}}, got {entry!r:.200}",
                                "see docs/protocol.md 'submit'")
        n = entry["frame"]
        if n in out:
            raise ProtocolError(f"in-band frame {n} appears twice", "send each frame once")
        for idx in (entry[key] for key in ("rgba", "depth") if key in entry):
            if not 0 <= idx < len(arrays) or idx in used:
                raise ProtocolError(f"inband[{i}] refers to array {idx}, which is missing or used twice",
                                    f"indices 0..{len(arrays) - 1}, each once")
            used.add(idx)
        rgba = arrays[entry["rgba"]]
        if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
            raise ProtocolError(f"in-band frame {n}: image shape {rgba.shape} is not H x W x 3|4",
                                "send RGB or RGBA images")
        out[n] = {"rgba": rgba}
        if "depth" in entry:
            depth = arrays[entry["depth"]]
            if depth.shape not in (rgba.shape[:2], rgba.shape[:2] + (1,)):
                raise ProtocolError(f"in-band frame {n}: depth shape {depth.shape} does not match image "
                                    f"{rgba.shape[:2]}", "depth must be H x W like its image")
            out[n]["depth"] = depth.reshape(rgba.shape[:2])
    if len(used) != len(arrays):
        raise ProtocolError(f"{len(arrays) - len(used)} array frame(s) are not referenced by 'inband'",
                            "send only the arrays the table names")
    return out


__all__ = [
    "PROTOCOL_VERSION", "DTYPES", "Limits", "Message", "SCHEMAS", "CLIENT_TYPES", "SERVER_TYPES",
    "encode", "decode", "decode_header", "message_bytes", "inband_table", "inband_frames",
    "error_class", "error_from_fields", "error_fields",
]
