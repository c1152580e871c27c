"""Hostile and malformed messages against a real server process: it answers each with an
error and never dies.  Hypothesis drives the inputs with a bounded number of examples."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focuspull import protocol
from test_service_support import ServerProcess, inband_job, tiny_clip

pytestmark = pytest.mark.timeout(180)

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    srv = ServerProcess(root / "server.log", "--root", str(root), "--max-message-mb", "4")
    yield srv
    code = srv.terminate()
    assert code == 0, srv.log()


@pytest.fixture(scope="module")
def raw(server):
    """A bare DEALER socket: sends anything, reads what the server says back."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    yield sock
    sock.close()


def exchange(sock, frames, timeout_ms=10_000):
    """Send one message and return the reply to it, skipping heartbeats and the progress
    stream of jobs accepted earlier (those carry 'job' and no 're')."""
    sock.send_multipart(frames)
    while True:
        assert sock.poll(timeout_ms), "the server did not answer"
        reply = protocol.decode(sock.recv_multipart(), expect=protocol.SERVER_TYPES)
        if reply.type != "heartbeat" and not ("job" in reply.fields and "re" not in reply.fields):
            return reply


def assert_error(reply, code="bad_message"):
    assert reply.type == "error", reply
    assert reply.fields["code"] == code and reply.fields["message"] and reply.fields["hint"]


def packed(obj):
    return msgpack.packb(obj, use_bin_type=True)


# -- strategies -------------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                    st.text(max_size=20), st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
client_types = st.sampled_from(sorted(protocol.CLIENT_TYPES - {"heartbeat"}))


@FUZZ
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_random_bytes_get_an_error_reply(raw, frames):
    try:
        msgpack.unpackb(frames[0])
        return  # (rare) valid msgpack is covered by the tests below
    except Exception:
        pass
    assert_error(exchange(raw, frames))


@FUZZ
@given(client_types, st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda k: k not in ("v", "type", "arrays", "token", "id")), values, min_size=1, max_size=3))
def test_unknown_fields_are_rejected(raw, msg_type, extra):
    if msg_type == "submit":
        extra = {k: v for k, v in extra.items() if k not in ("job", "inband", "echo")} or {"zz": 1}
    if msg_type == "cancel":
        extra = {k: v for k, v in extra.items() if k != "job"} or {"zz": 1}
    if msg_type == "hello":
        extra = {k: v for k, v in extra.items() if k != "client"} or {"zz": 1}
    header = {"v": 1, "type": msg_type, "id": "fz", **extra}
    reply = exchange(raw, [packed(header)])
    assert_error(reply)
    assert "unknown field" in reply.fields["message"]


@FUZZ
@given(client_types, values)
def test_wrong_types_for_required_fields_are_rejected(raw, msg_type, value):
    field = {"cancel": "job", "submit": "job"}.get(msg_type, "id")
    ok = {"job": lambda v: isinstance(v, dict) if msg_type == "submit" else isinstance(v, str) and 0 < len(v) <= 128,
          "id": lambda v: isinstance(v, str) and 0 < len(v) <= 128}[field]
    if ok(value):
        return
    header = {"v": 1, "type": msg_type, "id": "fz", "job": "j" if msg_type == "cancel" else {}}
    header[field] = value
    assert_error(exchange(raw, [packed(header)]))


@FUZZ
@given(st.one_of(st.integers(-2**63, 2**64 - 1), st.text(max_size=3), st.none(), st.floats()).filter(
    lambda v: v != 1))
def test_other_protocol_versions_are_rejected(raw, version):
    reply = exchange(raw, [packed({"v": version, "type": "ping", "id": "fz"})])
    assert_error(reply)
    assert "version" in reply.fields["message"]


@FUZZ
@given(st.lists(st.integers(-5, 2**40), min_size=0, max_size=5),
       st.sampled_from(["float32", "uint8", "float64", "object", "<f4", 3]),
       st.integers(0, 64))
def test_hostile_array_descriptions_are_rejected_without_allocating(raw, shape, dtype, nbytes):
    header = {"v": 1, "type": "submit", "id": "fz", "job": {}, "echo": True,
              "inband": [{"frame": 1, "rgba": 0, "depth": 0}],
              "arrays": [{"dtype": dtype, "shape": shape}]}
    assert_error(exchange(raw, [packed(header), bytes(nbytes)]))


@FUZZ
@given(st.lists(st.fixed_dictionaries({"frame": values, "rgba": values, "depth": values}), max_size=3))
def test_hostile_inband_tables_are_rejected(raw, table):
    a = np.zeros((2, 2, 3), np.float32)
    z = np.zeros((2, 2), np.float32)
    frames = protocol.encode("submit", {"id": "fz", "job": {}, "echo": True, "inband": table}, [a, z])
    reply = exchange(raw, frames)
    good = (len(table) == 1 and table[0] in ({"frame": table[0]["frame"], "rgba": 0, "depth": 1},)
            and isinstance(table[0]["frame"], int) and not isinstance(table[0]["frame"], bool))
    if good:
        assert reply.type == "accepted"
    else:
        assert_error(reply)


job_keys = st.sampled_from(["input", "frames", "depth", "lens", "focus", "aperture", "output",
                            "device", "plane_spacing_px", "pattern", "fstop", "zz"])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.dictionaries(job_keys, st.one_of(values, st.dictionaries(job_keys, values, max_size=3)), max_size=4))
def test_hostile_job_maps_get_an_answer(raw, job):
    reply = exchange(raw, protocol.encode("submit", {"id": "fzjob", "job": job}))
    assert reply.type in ("accepted", "error"), reply
    if reply.type == "error":
        assert reply.fields["code"] in ("bad_job", "bad_input", "bad_lens", "path_refused", "bad_message")
        assert reply.fields["hint"]


def test_deeply_nested_and_oversized_headers_are_rejected(raw):
    deep = b"\x91" * 100_000 + b"\xc0"  # 100k nested lists
    assert_error(exchange(raw, [deep]))
    assert_error(exchange(raw, [packed({"v": 1, "type": "ping", "id": "x" * (2 * 2**20)})]))
    assert_error(exchange(raw, [packed({"v": 1, "type": "submit", "id": "a",
                                        "job": {"frames": list(range(200_000))}})]))


def test_a_retried_submit_is_queued_once(raw, server):
    clip = tiny_clip([1], h=4, w=4)
    table, arrays = protocol.inband_table(clip)
    frames = protocol.encode("submit", {"id": "same-id", "job": {}, "echo": True, "inband": table}, arrays)
    since = exchange(raw, protocol.encode("ping", {"id": "clock"})).fields["time"]  # server clock
    first = exchange(raw, frames)
    second = exchange(raw, frames)
    assert first.type == second.type == "accepted"
    assert first.fields["job"] == second.fields["job"]
    listing = exchange(raw, protocol.encode("jobs", {"id": "list"}))
    new_jobs = [j["job"] for j in listing.fields["jobs"] if j["submitted"] >= since]
    assert new_jobs == [first.fields["job"]]  # queued once, not twice under the same answer


def test_an_echo_submit_must_carry_an_empty_job_map(raw):
    clip = tiny_clip([1], h=4, w=4)
    table, arrays = protocol.inband_table(clip)
    frames = protocol.encode("submit", {"id": "echo-job", "job": {"pad": "x" * 60_000}, "echo": True,
                                        "inband": table}, arrays)
    reply = exchange(raw, frames)
    assert_error(reply)
    assert "echo" in reply.fields["message"]


def test_server_still_renders_after_the_fuzzing(server):
    with server.client() as c:
        out = c.submit(inband_job([1]), inband=tiny_clip([1])).result()
        assert out[1].shape == (12, 16, 4) and np.isfinite(out[1]).all()
        assert c.status()["workers"][0]["alive"]
