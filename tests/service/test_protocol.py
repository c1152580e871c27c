"""focuspull.protocol: encode/decode round trips and strict validation (pure functions)."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest

from focuspull import errors, protocol
from focuspull.errors import ProtocolError
from focuspull.protocol import Limits, decode, encode


def _header(**fields):
    return msgpack.packb({"v": protocol.PROTOCOL_VERSION, **fields}, use_bin_type=True)


def _as_bytes(frames):
    return [bytes(f) for f in frames]


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8", "uint16"])
def test_arrays_round_trip_bit_exact_for_every_allowed_dtype(dtype):
    rng = np.random.default_rng(0)
    a = (rng.random((5, 7, 3)) * 200).astype(dtype)
    z = (rng.random((5, 7)) * 200).astype(dtype)
    frames = encode("submit", {"id": "r1", "job": {"frames": [1]},
                               "inband": [{"frame": 1, "rgba": 0, "depth": 1}]}, [a, z])
    msg = decode(_as_bytes(frames))
    assert msg.type == "submit" and msg.fields["job"] == {"frames": [1]}
    assert msg.arrays[0].dtype == np.dtype(dtype) and msg.arrays[0].shape == (5, 7, 3)
    np.testing.assert_array_equal(msg.arrays[0], a)
    np.testing.assert_array_equal(msg.arrays[1], z)


def test_encode_sends_the_array_buffer_itself_and_decode_does_not_copy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    frames = encode("result", {"job": "j", "frame": 3}, [a])
    assert np.shares_memory(np.frombuffer(frames[1], np.float32), a)  # no copy on send
    buf = bytearray(bytes(frames[1]))
    msg = decode([bytes(frames[0]), buf], expect=protocol.SERVER_TYPES)
    buf[0:4] = np.float32(99).tobytes()  # a view sees writes to the received buffer
    assert msg.arrays[0][0, 0, 0] == 99


def test_big_endian_and_non_contiguous_arrays_arrive_as_the_same_values():
    a = np.arange(24, dtype=">f4").reshape(4, 6)[:, ::2]
    msg = decode(_as_bytes(encode("result", {"job": "j", "frame": 1}, [a])), expect=protocol.SERVER_TYPES)
    np.testing.assert_array_equal(msg.arrays[0], a.astype(np.float32))


def test_token_travels_in_the_envelope_not_in_fields():
    msg = decode(_as_bytes(encode("ping", {"id": "x"}, token="s3cret")))
    assert msg.token == "s3cret" and "token" not in msg.fields


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.complex64, object])
def test_encode_refuses_dtypes_outside_the_whitelist(dtype):
    with pytest.raises(ProtocolError, match="cannot travel"):
        encode("result", {"job": "j", "frame": 1}, [np.zeros((2, 2), dtype)])


def test_decode_refuses_dtypes_outside_the_whitelist():
    h = _header(type="result", job="j", frame=1, arrays=[{"dtype": "float64", "shape": [2]}])
    with pytest.raises(ProtocolError, match="not allowed"):
        decode([h, bytes(16)], expect=protocol.SERVER_TYPES)


@pytest.mark.parametrize("header, match", [
    ({"type": "ping", "id": "a", "extra": 1}, "unknown field"),
    ({"type": "ping"}, "missing field 'id'"),
    ({"type": "ping", "id": 5}, "wrong type"),
    ({"type": "ping", "id": ""}, "wrong type"),
    ({"type": "submit", "id": "a", "job": [1, 2]}, "wrong type"),
    ({"type": "cancel", "id": "a", "job": None}, "wrong type"),
    ({"type": "launch_missiles", "id": "a"}, "unexpected message type"),
    ({"type": "pong", "re": "a", "time": 1.0}, "unexpected message type"),  # server-only type
    ({"type": 7}, "no string field 'type'"),
    ({"type": "ping", "id": "a", "token": 123}, "token must be a string"),
])
def test_decode_rejects_malformed_headers(header, match):
    with pytest.raises(ProtocolError, match=match):
        decode([_header(**header)])


@pytest.mark.parametrize("v", [0, 2, "1", None])
def test_decode_rejects_other_protocol_versions(v):
    h = msgpack.packb({"v": v, "type": "ping", "id": "a"})
    with pytest.raises(ProtocolError, match="version"):
        decode([h])


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x92\x01\x02", b"\xa3abc", b"\xd4\x01\x00",
                                 b"\x81\x01\x02"])
def test_decode_rejects_non_map_garbage_ext_types_and_int_keys(raw):
    with pytest.raises(ProtocolError):
        decode([raw])


def test_array_frame_count_and_sizes_must_match_the_header():
    desc = [{"dtype": "float32", "shape": [2, 2]}]
    h = _header(type="result", job="j", frame=1, arrays=desc)
    with pytest.raises(ProtocolError, match="1 arrays but 0"):
        decode([h], expect=protocol.SERVER_TYPES)
    with pytest.raises(ProtocolError, match="16 bytes but its frame has 15"):
        decode([h, bytes(15)], expect=protocol.SERVER_TYPES)
    with pytest.raises(ProtocolError, match="0 arrays but 1"):
        decode([_header(type="result", job="j", frame=1), bytes(4)], expect=protocol.SERVER_TYPES)


@pytest.mark.parametrize("shape", [[], [1, 2, 3, 4], [10**9, 10**9], [-1, 4], [2.0, 2], [2, 2, 99]])
def test_decode_rejects_huge_or_malformed_declared_shapes_before_touching_data(shape):
    h = _header(type="result", job="j", frame=1, arrays=[{"dtype": "uint8", "shape": shape}])
    with pytest.raises(ProtocolError):
        decode([h, b"\x00" * 8], expect=protocol.SERVER_TYPES)


def test_limits_on_message_size_header_size_and_collection_lengths():
    small = Limits(max_message_bytes=1000, max_header_bytes=200, max_items=10, max_str_len=50)
    big = encode("result", {"job": "j", "frame": 1}, [np.zeros(300, np.float32)])
    with pytest.raises(ProtocolError, match="exceeds the limit of 1000"):
        decode(_as_bytes(big), small, expect=protocol.SERVER_TYPES)
    with pytest.raises(ProtocolError, match="header of"):
        decode([_header(type="ping", id="a", pad="x" * 300)], small)
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode([_header(type="submit", id="a", job={"frames": list(range(11))})], small)
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode([_header(type="ping", id="a" * 60)], small)


def test_inband_table_round_trip_and_validation():
    rgba = np.ones((4, 6, 4), np.float32)
    depth = np.full((4, 6), 2.0, np.float32)
    table, arrays = protocol.inband_table({12: {"rgba": rgba, "depth": depth},
                                           10: {"rgba": rgba * 2, "depth": depth}})
    assert [e["frame"] for e in table] == [10, 12]
    frames = protocol.inband_frames(table, arrays, max_frames=2)
    np.testing.assert_array_equal(frames[10]["rgba"], rgba * 2)
    assert frames[12]["depth"].shape == (4, 6)
    with pytest.raises(ProtocolError, match="exceed the limit of 1"):
        protocol.inband_frames(table, arrays, max_frames=1)
    with pytest.raises(ProtocolError, match="missing or used twice"):
        protocol.inband_frames([{"frame": 1, "rgba": 0, "depth": 0}], arrays[:2], max_frames=9)
    with pytest.raises(ProtocolError, match="not referenced"):
        protocol.inband_frames(table[:1], arrays, max_frames=9)
    with pytest.raises(ProtocolError, match="does not match"):
        protocol.inband_frames([{"frame": 1, "rgba": 0, "depth": 1}],
                               [rgba, np.ones((3, 6), np.float32)], max_frames=9)
    with pytest.raises(ProtocolError, match="H x W x 3"):
        protocol.inband_frames([{"frame": 1, "rgba": 0, "depth": 1}],
                               [np.ones((4, 6), np.float32), depth], max_frames=9)
    with pytest.raises(ProtocolError, match="map of ints"):
        protocol.inband_frames([{"frame": "1", "rgba": 0, "depth": 1}], arrays[:2], max_frames=9)
    with pytest.raises(ProtocolError, match="map of ints"):
        protocol.inband_frames([{"frame": 1, "depth": 0}], arrays[:1], max_frames=9)


def test_inband_frames_may_leave_out_depth_for_a_depth_model():
    rgba = np.ones((4, 6, 3), np.float32)
    depth = np.full((4, 6), 2.0, np.float32)
    table, arrays = protocol.inband_table({1: {"rgba": rgba}, 2: {"rgba": rgba, "depth": depth}})
    assert table == [{"frame": 1, "rgba": 0}, {"frame": 2, "rgba": 1, "depth": 2}]
    frames = protocol.inband_frames(table, arrays, max_frames=9)
    assert set(frames[1]) == {"rgba"} and set(frames[2]) == {"rgba", "depth"}
    with pytest.raises(ProtocolError, match="has no 'rgba'"):
        protocol.inband_table({1: {"depth": depth}})
    with pytest.raises(ProtocolError, match="not referenced"):  # a depth array the table does not name
        protocol.inband_frames([{"frame": 1, "rgba": 0}], [rgba, depth], max_frames=9)


def test_error_codes_rebuild_the_right_exception_class():
    for cls in (errors.JobSpecError, errors.PathPolicyError, errors.Cancelled, errors.ProtocolError,
                errors.ServerBusy, errors.AuthError, errors.UnknownJob):
        fields = protocol.error_fields(cls("it broke", "do this"))
        assert fields == {"code": cls.code, "message": "it broke", "hint": "do this"}
        exc = protocol.error_from_fields(fields)
        assert type(exc) is cls and exc.message == "it broke" and exc.hint == "do this"
    assert type(protocol.error_from_fields({"code": "no-such", "message": "m", "hint": ""})) \
        is errors.FocuspullError
    internal = protocol.error_fields(ZeroDivisionError("x"))
    assert internal["code"] == "internal" and "ZeroDivisionError" in internal["message"]


def test_every_wire_error_code_is_unique():
    classes = [errors.FocuspullError]
    seen = {}
    while classes:
        cls = classes.pop()
        assert seen.setdefault(cls.code, cls) is cls, f"code {cls.code} used twice"
        classes.extend(cls.__subclasses__())
