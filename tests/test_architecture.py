"""The shape of the package: imports point down the layers, host-facing modules stay light."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])


def test_import_contracts_hold():
    """docs/architecture.md: commands -> service -> pipeline -> stages -> io -> spec; client,
    protocol and spec import no renderer, torch or OpenImageIO; spec imports no numpy."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is in the test extra (make test installs it)"
    out = subprocess.run([lint, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO / "server",
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract test can fail: a copy of the package where io imports the pipeline breaks it."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    shutil.copytree(REPO / "server" / "focuspull", tmp_path / "focuspull",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "focuspull" / "io" / "frames.py", "a") as f:
        f.write("\nimport focuspull.pipeline.run  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([lint, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "BROKEN" in out.stdout.upper()


@pytest.mark.timeout(120)
def test_client_and_spec_import_in_a_venv_without_torch(tmp_path):
    """A host Python (Nuke, Resolve) gets only the base install: numpy, pyzmq, msgpack.

    A real venv whose site-packages hold exactly those (linked from this environment) and the
    focuspull source; importing the host-facing modules must work and load no torch."""
    env_dir = tmp_path / "hostenv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in ("numpy", "numpy.libs", "zmq", "pyzmq.libs", "msgpack"):
        if (SITE / name).exists():
            (site / name).symlink_to(SITE / name)
    (site / "focuspull.pth").write_text(str(REPO / "server") + "\n")
    code = ("import sys, focuspull, focuspull.client, focuspull.spec.job, focuspull.spec.fields, focuspull.protocol\n"
            "from focuspull.spec.job import RenderJob\n"
            "RenderJob.from_dict({'input': {'pattern': 'a.####.exr'}, 'lens': {'fstop': '1001:2,1010:4@smooth'}})\n"
            "heavy = [m for m in ('torch', 'OpenImageIO', 'av', 'diffusers') if m in sys.modules]\n"
            "import importlib.util as u\n"
            "print('loaded', heavy, 'installed', [m for m in ('torch', 'OpenImageIO') if u.find_spec(m)])")
    out = subprocess.run([str(py), "-I", "-c", code], capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", "")})
    # -I ignores PYTHONPATH and user site; the .pth in the venv's site-packages still applies.
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "loaded [] installed []"
