"""Hostile clients and sysadmins (issue 13): bounded memory, bad numbers, padding, signals.

Real ``focuspull serve`` processes on 127.0.0.1; waits are on observed states, never sleeps
racing the machine.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import zmq

from focuspull import protocol
from focuspull.errors import FocuspullError, InputError
from focuspull.service.budgets import SendBudget, check_render_memory, render_memory_bytes
from focuspull.spec.fields import FIELDS
from test_service_support import inband_job, start_server, tiny_clip  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(180)


# -- backpressure --------------------------------------------------------------------------------
class SlowReader:
    """A client that heartbeats but reads nothing: ZeroMQ may buffer one message for it."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 1)
        self.sock.setsockopt(zmq.RCVBUF, 16384)
        self.sock.connect(endpoint)
        self.n = 0

    def send(self, msg_type: str, fields: dict, arrays=()) -> None:
        self.n += 1
        self.sock.send_multipart(protocol.encode(msg_type, {"id": f"r{self.n}", **fields}, arrays), copy=False)

    def heartbeat(self) -> None:
        self.send("heartbeat", {})

    def read_all(self, n_done: int, timeout_s: float = 60.0) -> list:
        """Read until ``n_done`` jobs ended ('done' or 'error'); heartbeating as a client does."""
        got, ended = [], 0
        deadline = time.monotonic() + timeout_s
        while ended < n_done and time.monotonic() < deadline:
            self.heartbeat()
            while self.sock.poll(100):
                msg = protocol.decode(self.sock.recv_multipart(), expect=protocol.SERVER_TYPES)
                got.append(msg)
                ended += msg.type in ("done", "error") and "job" in msg.fields
        assert ended == n_done, [m.type for m in got][-5:]
        return got

    def close(self) -> None:
        self.sock.close()


def wait_for_jobs(watcher, reader: SlowReader, predicate, timeout_s: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reader.heartbeat()  # it stays alive: only its reading stopped
        jobs = watcher.jobs()
        if predicate(jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError(f"jobs never reached the state: {jobs}")


def test_a_client_that_never_reads_pauses_its_job_until_it_reads(start_server):
    srv = start_server("--max-unsent-mb", "1")
    clip = tiny_clip(range(1, 49), h=256, w=256)  # 48 results of 1 MiB: far over budget + buffers
    table, arrays = protocol.inband_table(clip)
    reader = SlowReader(srv.endpoint)
    try:
        with srv.client() as watcher:
            reader.send("submit", {"job": {}, "echo": True, "inband": table}, arrays)
            jobs = wait_for_jobs(watcher, reader, lambda js: len(js) == 1 and js[0]["paused"])
            assert jobs[0]["state"] == "running"
            # A second job of the same client waits in the queue behind the paused one.
            reader.send("submit", {"job": {}, "echo": True, "inband": table}, arrays)
            jobs = wait_for_jobs(watcher, reader, lambda js: len(js) == 2)
            assert sorted(j["state"] for j in jobs) == ["queued", "running"]
            assert watcher.ping() < 5  # the server itself is not stalled
        # Reading resumes the job: every result arrives, whole and in order.
        got = reader.read_all(n_done=2)
    finally:
        reader.close()
    results = [m for m in got if m.type == "result"]
    assert [m.fields["frame"] for m in results] == list(range(1, 49)) * 2
    for m in results:
        np.testing.assert_array_equal(m.arrays[0], clip[m.fields["frame"]]["rgba"])
    assert [m.type for m in got].count("done") == 2


def test_a_silent_paused_client_has_its_job_cancelled_and_the_worker_freed(start_server):
    srv = start_server("--max-unsent-mb", "1", "--client-timeout-s", "1.5")
    clip = tiny_clip(range(1, 49), h=256, w=256)
    table, arrays = protocol.inband_table(clip)
    reader = SlowReader(srv.endpoint)
    try:
        with srv.client() as watcher:
            reader.send("submit", {"job": {}, "echo": True, "inband": table}, arrays)
            wait_for_jobs(watcher, reader, lambda js: len(js) == 1 and js[0]["paused"])
            # Now silent too: the timeout cancels it, and the worker takes the next job.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and watcher.jobs()[0]["state"] == "running":
                time.sleep(0.05)
            assert watcher.jobs()[0]["state"] == "cancelled"
            assert sorted(watcher.submit(inband_job([1]), inband=tiny_clip([1])).result()) == [1]
    finally:
        reader.close()


def test_send_budget_blocks_over_the_cap_and_lets_one_big_message_through():
    budget = SendBudget(100)
    assert budget.reserve(b"a", 500, stop=lambda: False)  # nothing held: a big one still goes
    waits = []
    assert not budget.reserve(b"a", 10, stop=lambda: len(waits) > 0, on_wait=lambda: waits.append(1),
                              poll_s=0.01)
    assert waits == [1] and budget.held(b"a") == 500
    assert budget.reserve(b"b", 60, stop=lambda: False)  # other clients are not held back
    budget.release(b"a", 500)
    assert budget.reserve(b"a", 60, stop=lambda: False) and budget.held(b"a") == 60


def test_render_memory_is_estimated_and_an_8k_in_band_frame_is_refused(start_server):
    assert render_memory_bytes(2160, 3840, 3) > 1.0e9  # ~ the measured 1.4 GB at 4K
    check_render_memory(2160, 3840, 4, 8192 * 2**20)
    with pytest.raises(InputError, match="--max-render-mb"):
        check_render_memory(8192, 8192, 4, 8192 * 2**20)
    srv = start_server("--max-render-mb", "1")
    with srv.client() as c:
        with pytest.raises(InputError, match="needs about"):
            c.submit(inband_job([1]), inband=tiny_clip([1], h=96, w=128))
        assert sorted(c.submit(inband_job([1]), inband=tiny_clip([1], h=12, w=16)).result()) == [1]


# -- bad numbers and strings ----------------------------------------------------------------------
HOSTILE = (5e-324, -5e-324, 1e30, -1e30, 1e308, 2**63 - 1, -(2**63), 0, -1)


def _job_with(path: str, value) -> dict:
    job = inband_job([1])
    section, _, name = path.rpartition(".")
    if section:
        job.setdefault(section, {})[name] = value
    else:
        job[name] = value
    if section == "lens" and name in ("size_px", "k"):
        job["lens"] = {"mode": "artistic", name: value}
    if section == "focus" and name in ("point_x", "point_y", "point_radius_px", "track_from_frame"):
        job["focus"] = {"mode": "point", "point_x": 4, "point_y": 4, name: value}
    if section == "focus" and name == "disparity":
        job["focus"] = {"mode": "disparity", "disparity": value}
    return job


def test_no_hostile_number_in_any_field_is_a_server_bug(start_server):
    srv = start_server()
    numeric = [f.path for f in FIELDS if f.kind in ("float", "int") and f.path != "device"]
    assert len(numeric) > 15
    codes = {}
    with srv.client(timeout_s=30) as c:
        for path in numeric:
            for value in HOSTILE:
                try:
                    c.submit(_job_with(path, value), inband=tiny_clip([1])).result()
                    code = "ok"
                except FocuspullError as exc:
                    code = exc.code
                    assert len(str(exc)) < 1000, (path, value, str(exc)[:200])
                    assert str(2**63 - 1) not in str(exc) or len(str(exc)) < 400
                codes[(path, value)] = code
        assert c.ping() < 5
    internal = {k: v for k, v in codes.items() if v == "internal"}
    assert not internal, internal
    assert codes[("plane_spacing_px", 1e30)] == "bad_job" and codes[("lens.sensor_width_mm", 5e-324)] == "bad_job"
    assert codes[("highlights.gain", 1e308)] == "bad_job"


def test_hostile_paths_are_bad_input_not_internal_and_not_echoed_whole(start_server, tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    srv = start_server("--root", str(root))
    long_name = "d" * 300  # one component over NAME_MAX, the whole path under the length bound
    cases = {
        "padding": {"input": {"pattern": "in/p.####.exr"}, "output": {"pattern": "out/o.%300000000d.exr"}},
        "checkpoint": {"depth": {"kind": "model", "model": "tiny", "checkpoint_dir": "c" * 5000},
                       "lens": {"mode": "artistic", "size_px": 4.0},
                       "focus": {"mode": "point", "point_x": 1, "point_y": 1}},
        "name_max": {"input": {"pattern": f"in/{long_name}/p.####.exr"}, "output": {"pattern": "out/o.####.exr"}},
    }
    with srv.client() as c:
        for name, fields in cases.items():
            job = {**inband_job([1]), **fields}
            with pytest.raises(FocuspullError) as info:
                c.submit(job)
            assert info.value.code not in ("internal", "bad_message"), (name, info.value)
            assert len(str(info.value)) < 600, (name, len(str(info.value)))
        assert c.ping() < 5


# -- signals ----------------------------------------------------------------------------------------
def test_signals_during_shutdown_still_exit_zero(start_server):
    srv = start_server()
    with srv.client() as c:
        c.ping()
    # SIGTERM, then more while the server shuts down and while Python finalises (when the
    # interpreter resets its handlers): every one must leave the exit status 0.
    deadline = time.monotonic() + 60
    while srv.proc.poll() is None and time.monotonic() < deadline:
        try:
            os.kill(srv.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.002)
    assert srv.wait() == 0
    assert "server stopped" in srv.log()
