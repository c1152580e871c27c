"""The server loop in-process with a recording stand-in runner: fairness across clients,
worker exceptions, per-worker state loaded once, the queue limit, client cancel of a
queued job.  Real sockets on 127.0.0.1; only the render is replaced."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from focuspull.client import Client
from focuspull.errors import Cancelled, InternalError, ServerBusy
from focuspull.service.config import ServerConfig
from focuspull.service.server import Server
from focuspull.service.worker import Outcome
from test_service_support import free_port, tiny_clip

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """Runner factory + runner: records job order, can block and can blow up."""

    def __init__(self):
        self.factory_calls = []
        self.order = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, device):
        self.factory_calls.append(device)
        return self.run

    def run(self, job, on_event, cancelled):
        tag = job.spec.frames[0]
        self.order.append(tag)
        while not self.gate.wait(0.02):
            if cancelled():
                raise Cancelled("stopped", "nothing written")
        if tag == 666:
            raise ZeroDivisionError("boom")
        frame = {n: np.full((2, 2, 3), float(n), np.float32) for n in job.spec.frames}
        eta = float("inf") if tag == 55 else 0.0  # the pipeline's "unknown"
        on_event({"type": "frame", "frame": tag, "done": 1, "total": 1, "fps": 1.0, "eta_s": eta, "path": None})
        return Outcome(list(frame), [], frame)


@pytest.fixture
def served(request):
    """(server, recorder, endpoint); config overrides by indirect parametrisation."""
    overrides = getattr(request, "param", {})
    recorder = Recorder()
    port = free_port()
    config = ServerConfig(**{"bind": f"tcp://127.0.0.1:{port}", "device": "cpu", "max_queued": 6,
                             "heartbeat_s": 0.3, **overrides})
    server = Server(config, runner_factory=recorder)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server, recorder, f"tcp://127.0.0.1:{port}"
    server.stop()
    thread.join(10)
    assert not thread.is_alive()


def wait_running(rec, order, timeout_s=5):
    deadline = time.monotonic() + timeout_s
    while rec.order != order and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.order == order


def job(tag):
    clip = tiny_clip([tag], h=2, w=2)
    return {"frames": [tag], "lens": {"mode": "physical"}, "focus": {"mode": "distance"}}, clip


def test_round_robin_across_clients_and_state_loaded_once_per_worker(served):
    server, rec, endpoint = served
    rec.gate.clear()  # hold the worker so the queue fills up
    with Client(endpoint, timeout_s=10) as a, Client(endpoint, timeout_s=10) as b:
        blocker = a.submit(*job(1))
        deadline = time.monotonic() + 5
        while rec.order != [1] and time.monotonic() < deadline:
            time.sleep(0.01)
        handles = [a.submit(*job(t)) for t in (2, 3, 4)] + [b.submit(*job(t)) for t in (10, 11)]
        rec.gate.set()
        results = [h.result() for h in [blocker, *handles]]
    assert rec.order == [1, 2, 10, 3, 11, 4]  # A and B take turns, FIFO within each
    assert [sorted(r) for r in results] == [[1], [2], [3], [4], [10], [11]]
    assert results[4][10][0, 0, 0] == 10.0
    assert rec.factory_calls == ["cpu"]  # one worker, its state built once for all jobs


def test_worker_exception_is_an_error_reply_and_the_server_keeps_going(served):
    server, rec, endpoint = served
    with Client(endpoint, timeout_s=10) as c:
        with pytest.raises(InternalError, match="ZeroDivisionError: boom") as info:
            c.submit(*job(666)).result()
        assert "server bug" in info.value.hint
        assert sorted(c.submit(*job(7)).result()) == [7]
        states = {j["state"] for j in c.jobs()}
    assert states == {"failed", "done"}


def test_queue_limit_and_cancelling_a_queued_job(served):
    server, rec, endpoint = served
    rec.gate.clear()
    with Client(endpoint, timeout_s=10) as c:
        running = c.submit(*job(1))
        deadline = time.monotonic() + 5
        while rec.order != [1] and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = [c.submit(*job(t)) for t in range(2, 8)]  # 6 = max_queued
        with pytest.raises(ServerBusy, match="--max-queued"):
            c.submit(*job(99))
        assert queued[0].cancel() == "cancelled"
        with pytest.raises(Cancelled, match="before it started"):
            queued[0].result()
        assert running.cancel() == "running"
        with pytest.raises(Cancelled):
            running.result()
        rec.gate.set()
        for h in queued[1:]:
            h.result()
    assert 2 not in rec.order and rec.order[1:] == [3, 4, 5, 6, 7]


@pytest.mark.parametrize("served", [{"max_queued_mb": 1}], indirect=True)
def test_queued_inband_bytes_are_bounded(served):
    server, rec, endpoint = served
    rec.gate.clear()
    with Client(endpoint, timeout_s=10) as c:
        first = c.submit(*job(1))
        wait_running(rec, [1])  # running jobs do not count: their frames are being used

        def big(tag):  # 150 x 200 RGBA + Z float32 = 0.57 MiB
            spec, _ = job(tag)
            return spec, tiny_clip([tag], h=150, w=200)

        queued = c.submit(*big(2))
        with pytest.raises(ServerBusy, match="--max-queued-mb"):
            c.submit(*big(3))
        rec.gate.set()
        first.result()
        queued.result()
        assert sorted(c.submit(*big(4)).result()) == [4]  # room again once the queue drained


def test_unknown_eta_travels_as_nil(served):
    server, rec, endpoint = served
    with Client(endpoint, timeout_s=10) as c:
        events = list(c.submit(*job(55)))
    assert events == [{"type": "frame", "frame": 55, "done": 1, "total": 1, "fps": 1.0, "eta_s": None,
                       "path": None}]
