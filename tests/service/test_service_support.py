"""Helpers for the service tests: a real ``focuspull serve`` process on 127.0.0.1.

Imported by tests/test_service*.py; holds no tests itself (one sanity check of the
helper, so a broken helper fails loudly here instead of in every test).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from focuspull.client import Client
from focuspull.errors import FocuspullError

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m focuspull.commands.cli serve`` (the real command line) as a child process."""

    def __init__(self, log_path: Path, *args: str, port: int | None = None, env: dict | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
        full_env["PYTHONPATH"] = str(REPO / "server")
        full_env.update(env or {})
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "focuspull.commands.cli", "serve", "--bind", self.endpoint, "--device", "cpu",
             "--heartbeat-s", "0.5", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        token = None
        args = self.proc.args
        if "--token" in args:
            token = args[args.index("--token") + 1]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with Client(self.endpoint, token=token, timeout_s=0.5, retries=0) as c:
                    c.ping()
                    return
            except FocuspullError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer within {timeout_s} s:\n{self.log()}")

    def client(self, **kw) -> Client:
        kw.setdefault("timeout_s", 20.0)
        return Client(self.endpoint, **kw)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def wait(self, timeout_s: float = 60.0) -> int:
        """Wait for the process to exit by itself (after a signal the test sent); its exit code."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def start_server(tmp_path):
    """Factory: ``start_server(*cli_args) -> ServerProcess``; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, **kw) -> ServerProcess:
        srv = ServerProcess(tmp_path / f"server{len(started)}.log", *args, **kw)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.kill()


def tiny_clip(frames, h=12, w=16, seed=0, channels=4):
    """In-band frames: random RGBA and a depth ramp 1..6 m (so the lens blurs something)."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in frames:
        rgba = rng.random((h, w, channels)).astype(np.float32)
        if channels == 4:
            rgba[..., :3] *= rgba[..., 3:]  # premultiplied
        depth = np.linspace(1.0, 6.0, h * w, dtype=np.float32).reshape(h, w)
        out[f] = {"rgba": rgba, "depth": depth}
    return out


def inband_job(frames, fstop=1.4) -> dict:
    return {"frames": list(frames), "lens": {"mode": "physical", "focal_length_mm": 50.0, "fstop": fstop},
            "focus": {"mode": "distance", "distance_m": 2.0}}


def test_free_port_is_bindable_and_tiny_clip_is_premultiplied():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    clip = tiny_clip([1])
    assert (clip[1]["rgba"][..., :3] <= clip[1]["rgba"][..., 3:] + 1e-7).all()
