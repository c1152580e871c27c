"""Fixtures of the farm tests: a tiny EXR clip with depth, the real ``openjd`` runner, and a
``focuspull`` executable on PATH that runs the code under test."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import focuspull
from focuspull.io.images import write_image

H, W = 24, 32
FRAMES = range(1, 6)


def write_clip(directory, frames=FRAMES):
    """A few tiny EXRs with a Z channel: a near slab (1.2 m) over a far wall (5 m)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(7)
    for f in frames:
        rgb = rng.random((H, W, 3)).astype(np.float32)
        rgb[4, 20] = 40.0  # a highlight, so the bokeh is not flat noise
        z = np.full((H, W, 1), 5.0, np.float32)
        z[:, : W // 3] = 1.2
        write_image(os.path.join(directory, f"p.{f:04d}.exr"), np.concatenate([rgb, z], 2), ["R", "G", "B", "Z"])
    return os.path.join(directory, "p.####.exr")


@pytest.fixture
def clip(tmp_path):
    return write_clip(str(tmp_path / "in"))


@pytest.fixture(scope="session")
def runner_env(tmp_path_factory):
    """Environment for the runner: the template's ``focuspull`` is this checkout's."""
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "focuspull"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m focuspull "$@"\n')
    script.chmod(0o755)
    server = os.path.dirname(os.path.dirname(os.path.abspath(focuspull.__file__)))
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": server, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def openjd(runner_env):
    """``openjd(*args) -> CompletedProcess``: the real OpenJD CLI (openjd-cli, in the test extra),
    run as the current user (no job user)."""
    pytest.importorskip("openjd.cli", reason="openjd-cli is not installed (pip install -e '.[test]')")
    path = os.path.join(os.path.dirname(sys.executable), "openjd")
    path = path if os.path.exists(path) else shutil.which("openjd")

    def run(*args, timeout=300):
        return subprocess.run([path, *map(str, args)], capture_output=True, text=True, env=runner_env,
                              timeout=timeout)
    return run
