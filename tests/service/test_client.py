"""focuspull.client: no torch, lazy-pirate retries, heartbeats, errors rebuilt from replies,
and the ``focuspull submit`` command line against a real server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import zmq

from focuspull import protocol
from focuspull.client import Client
from focuspull.commands.submit import parse_frames
from focuspull.errors import AuthError, InputError, PathPolicyError, ProtocolError, ServiceUnavailable
from test_service_support import REPO, free_port, start_server, tiny_clip  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(120)


def test_client_and_protocol_do_not_import_torch():
    code = ("import sys, focuspull, focuspull.client, focuspull.protocol, focuspull.commands.submit\n"
            "from focuspull.client import Client\n"
            "c = Client('tcp://127.0.0.1:1', timeout_s=0.1, retries=0); c.close()\n"
            "bad = [m for m in ('torch', 'OpenImageIO', 'focuspull.pipeline.run', 'focuspull.stages.render.layered') "
            "if m in sys.modules]\n"
            "print('LOADED', bad)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


class FakeServer(threading.Thread):
    """A ROUTER on 127.0.0.1 scripted by ``respond(ident, message) -> list of replies | None``."""

    def __init__(self, respond):
        super().__init__(daemon=True)
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.respond = respond
        self.seen = []  # (identity, Message)
        self.stop = threading.Event()
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, *frames = self.sock.recv_multipart()
            msg = protocol.decode(frames)
            self.seen.append((ident, msg))
            for msg_type, fields in self.respond(ident, msg) or []:
                self.sock.send_multipart([ident, *protocol.encode(msg_type, fields)])
        self.sock.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(5)


def test_lazy_pirate_reconnects_and_resends_the_same_request():
    def respond(ident, msg):
        pings = [m for _, m in fake.seen if m.type == "ping"]
        if len(pings) >= 2:  # ignore the first attempt
            return [("pong", {"re": msg.fields["id"], "time": 1.0})]
        return None

    with FakeServer(respond) as fake, Client(fake.endpoint, timeout_s=0.5, retries=2) as c:
        c.ping()
    pings = [(ident, m) for ident, m in fake.seen if m.type == "ping"]
    assert len(pings) == 2  # answered on the second attempt, not the first or a third
    assert pings[0][1].fields["id"] == pings[1][1].fields["id"]  # same request: server dedups submits
    assert pings[0][0] == pings[1][0]  # same routing identity after reconnecting


def test_no_server_raises_service_unavailable_after_bounded_retries():
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.3, retries=2) as c:
        with pytest.raises(ServiceUnavailable, match="after 3 attempt"):
            c.status()
        with pytest.raises(ServiceUnavailable, match="after 3 attempt"):  # and again: still usable
            c.ping()


def test_error_replies_become_the_matching_exception():
    def respond(ident, msg):
        return [("error", {"re": msg.fields["id"], "code": "path_refused", "message": "no /etc",
                           "hint": "use a root"})]

    with FakeServer(respond) as fake, Client(fake.endpoint, timeout_s=2, retries=0) as c:
        with pytest.raises(PathPolicyError) as info:
            c.jobs()
    assert info.value.message == "no /etc" and info.value.hint == "use a root"


def test_client_heartbeats_while_waiting_and_notices_a_silent_server():
    def respond(ident, msg):
        if msg.type == "hello":
            return [("welcome", {"re": msg.fields["id"], "server": "fake", "protocol": 1, "devices": [],
                                 "stages": [], "models": [], "limits": {}})]
        if msg.type == "submit":
            return [("accepted", {"re": msg.fields["id"], "job": "j1", "position": 0}),
                    ("progress", {"job": "j1", "frame": 1, "done": 1, "total": 3, "fps": 1.0,
                                  "eta_s": 2.0, "path": None})]
        return None  # then silence: the server "died"

    with FakeServer(respond) as fake, Client(fake.endpoint, timeout_s=1.5, retries=0, heartbeat_s=0.3) as c:
        handle = c.submit({"frames": [1, 2, 3]})
        it = iter(handle)
        assert next(it)["frame"] == 1
        with pytest.raises(ServiceUnavailable, match="went silent"):
            next(it)
        with pytest.raises(StopIteration):  # the handle is over; nothing more to wait for
            next(it)
    order = [m.type for _, m in fake.seen]
    assert order[:2] == ["hello", "submit"]
    # It kept the job alive while waiting: heartbeats every 0.3 s through the 1.5 s of silence.
    assert len(order) >= 2 + 3 and set(order[2:]) == {"heartbeat"}


def test_an_error_reply_without_a_request_id_answers_the_pending_request():
    def respond(ident, msg):
        return [("error", {"re": None, "code": "bad_message", "message": "the header is too long",
                           "hint": "send fewer frames"})]

    with FakeServer(respond) as fake, Client(fake.endpoint, timeout_s=5, retries=2) as c:
        with pytest.raises(ProtocolError, match="the header is too long"):
            c.status()
    assert [m.type for _, m in fake.seen] == ["status"]  # answered: no retry


def test_a_short_request_timeout_does_not_drop_a_big_result_stream(start_server):
    srv = start_server()
    clip = {f: {"rgba": np.full((2048, 2048, 4), f, np.float32), "depth": np.ones((2048, 2048), np.float32)}
            for f in range(1, 9)}  # 8 x 64 MiB come back
    with srv.client(timeout_s=30, retries=2) as c:
        handle = c.submit({}, inband=clip, echo=True)
        it = iter(handle)
        assert [next(it)["frame"] for _ in range(8)] == list(range(1, 9))  # the results follow
        assert c._socket.poll(10_000)  # the first result is here: 7 more (448 MiB) are in flight
        c.timeout_s = 0.2  # a host's short request timeout: longer than one result takes, not all
        assert c.status()["queued"] == 0
        c.timeout_s = 10
        assert list(it) == []
        out = handle.result()
    assert sorted(out) == list(range(1, 9)) and handle.rendered == list(range(1, 9))
    for f in out:
        assert out[f].shape == (2048, 2048, 4) and (out[f] == f).all()


def test_parse_frames():
    assert parse_frames("1001-1004") == [1001, 1002, 1003, 1004]
    assert parse_frames("1,5, 9") == [1, 5, 9]
    assert parse_frames("10-20x5") == [10, 15, 20]
    with pytest.raises(InputError, match="1001-1100"):
        parse_frames("ten")
    # A reversed range is an error, not [] (which a job reads as "every frame").
    with pytest.raises(InputError, match="ends before it starts"):
        parse_frames("1010-1001")


def _submit_cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
    env.update(PYTHONPATH=str(REPO / "server"), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "focuspull.commands.cli", "submit", *args],
                          capture_output=True, text=True, env=env, timeout=90)


def test_submit_command_line_renders_a_job_file_and_maps_errors_to_exit_codes(start_server, tmp_path):
    from test_service import read_exr, write_plate

    root = tmp_path / "root"
    write_plate(root / "in", [1, 2, 3])
    srv = start_server("--root", str(root))
    job = {"lens": {"mode": "physical", "focal_length_mm": 50.0, "fstop": 2.0},
           "focus": {"mode": "distance", "distance_m": 2.0}, "output": {"half": False}}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    ok = _submit_cli(str(job_file), "--input", "in/plate.####.exr", "--output", "out/dof.####.exr",
                     "--frames", "1-3", "--endpoint", srv.endpoint)
    assert ok.returncode == 0, ok.stderr
    assert "frame 3  3/3" in ok.stderr and "done: 3 frame(s) rendered in" in ok.stderr
    assert read_exr(root / "out" / "dof.0003.exr").shape == (24, 32, 5)

    again = _submit_cli(str(job_file), "--input", "in/plate.####.exr", "--output", "out/dof.####.exr",
                        "--frames", "1-3", "--endpoint", srv.endpoint)
    assert again.returncode == 2 and "already exist" in again.stderr and "--resume" in again.stderr
    escape = _submit_cli(str(job_file), "--input", "/etc/plate.####.exr", "--output", "out/x.####.exr",
                         "--endpoint", srv.endpoint)
    assert escape.returncode == 2 and "outside the server roots" in escape.stderr
    listing = _submit_cli("--jobs", "--endpoint", srv.endpoint)
    assert listing.returncode == 0 and "done" in listing.stdout
    dead = _submit_cli(str(job_file), "--endpoint", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert dead.returncode == 3 and "no answer" in dead.stderr
    reversed_range = _submit_cli(str(job_file), "--input", "in/plate.####.exr", "--output", "out/r.####.exr",
                                 "--frames", "1010-1001", "--endpoint", srv.endpoint)
    assert reversed_range.returncode == 2 and "ends before it starts" in reversed_range.stderr
    # More frames than msgpack lists may hold: the server cannot read the header's id, and
    # its error reply is the answer (not a retry and "no answer").
    huge = _submit_cli(str(job_file), "--input", "in/plate.####.exr", "--output", "out/h.####.exr",
                       "--frames", "1-100001", "--endpoint", srv.endpoint, "--timeout", "5")
    assert huge.returncode == 2, huge.stderr
    assert "no answer" not in huge.stderr and "100000" in huge.stderr.replace(" ", ""), huge.stderr
    assert not (root / "out" / "r.1001.exr").exists()


def test_inband_result_arrays_are_float32_images(start_server):
    srv = start_server()
    with srv.client() as c:
        echo = c.submit({}, inband=tiny_clip([3], h=5, w=7), echo=True).result()
        assert echo[3].dtype == np.float32 and echo[3].shape == (5, 7, 4)
        np.testing.assert_array_equal(echo[3], tiny_clip([3], h=5, w=7)[3]["rgba"])
        # An echo does not send the job map (the server refuses one): a full job is fine here.
        again = c.submit({"frames": [3], "lens": {"fstop": 2.0}}, inband=tiny_clip([3], h=5, w=7), echo=True)
        assert sorted(again.result()) == [3]
        status = c.status()
        assert status["queued"] == 0 and status["workers"][0]["device"] == "cpu"


def _monitor_events(client: Client, events) -> None:
    """Put ZeroMQ monitor messages (event, value) where the client reads its handshake events."""
    import struct
    import uuid

    ctx = zmq.Context.instance()
    address = f"inproc://fake-monitor-{uuid.uuid4().hex}"
    reader, writer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    reader.bind(address)
    writer.connect(address)
    client._socket.disable_monitor()
    client._monitor.close(linger=0)
    client._monitor = reader
    for event, value in events:
        writer.send_multipart([struct.pack("=hi", event, value), client.endpoint.encode()])
    writer.close(linger=1000)  # every event delivered before the writer goes


@pytest.mark.parametrize("token, says", [(None, "carried none"), ("secret", "wrong auth token")])
def test_handshakes_refused_without_a_cause_are_an_auth_error(token, says):
    """A server that refuses the handshake closes at once; when its close overtakes its greeting
    ZeroMQ reports only FAILED_NO_DETAIL (measured: most connections of a token-less client to a
    token server), so a few of those in a row are the refusal: AuthError, not a wait for ever."""
    with Client(f"tcp://127.0.0.1:{free_port()}", token=token, timeout_s=60, retries=0) as c:
        _monitor_events(c, [(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)] * 2)
        c._check_handshake()  # two: may be a server going down mid-handshake, not yet a refusal
        _monitor_events(c, [(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0), (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)] * 2)
        c._check_handshake()  # a handshake that succeeded in between: not refused in a row
        _monitor_events(c, [(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)] * 3)
        with pytest.raises(AuthError, match=says):
            c._check_handshake()
