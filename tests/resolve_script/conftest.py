"""Shared set-up for the Resolve / Fusion script tests: the real server fixture, the
stand-in, and small plates with depth."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(REPO, "tests", "service"), os.path.join(REPO, "resolve_script"), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from test_service_support import free_port, start_server  # noqa: E402,F401 (fixture)

import fake_resolve as fake  # noqa: E402


def plate(frame: int, h: int = 24, w: int = 32):
    """Premultiplied RGBA with a bright spot that moves, and depth 1..6 m left to right."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., 0] = 0.2 + 0.6 * xx / w
    rgba[..., 1] = 0.3 + 0.4 * yy / h
    rgba[..., 2] = 0.5 + 0.1 * np.sin(xx / 3 + frame)
    rgba[..., 3] = 1.0
    cx = 4 + (frame % 7) * 3
    rgba[(yy - 8) ** 2 + (xx - cx) ** 2 <= 2, :3] = 8.0  # a highlight that should bloom into bokeh
    z = np.broadcast_to(np.linspace(1.0, 6.0, w, dtype=np.float32), (h, w)).copy()
    return rgba, z


@pytest.fixture
def work(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setenv("FOCUSPULL_WORK", str(folder))
    monkeypatch.delenv("FOCUSPULL_TOKEN", raising=False)
    return folder


@pytest.fixture
def dead_endpoint():
    return f"tcp://127.0.0.1:{free_port()}"
