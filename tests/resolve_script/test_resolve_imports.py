"""Resolve's Python has numpy, pyzmq and msgpack at most: the scripts must never import torch,
OpenImageIO, PyAV or the renderer's side of focuspull.  Checked in a clean interpreter that
runs the real launcher files the way Resolve's Scripts menu does (globals fu / comp / bmd,
resolve), with the library folder found through FOCUSPULL_RESOLVE_LIB."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(REPO, "resolve_script")
PACKAGE = os.path.join(SCRIPTS, "focuspull_resolve")
ALLOWED_FOCUSPULL = ("focuspull", "focuspull.client", "focuspull.protocol", "focuspull.errors", "focuspull.spec")

PROBE = r"""
import json, runpy, sys
sys.path.insert(0, {here!r})
import fake_resolve as fake
rec, user = fake.Recorder(), fake.User()
fusion, bmd = fake.Fusion(rec), fake.Bmd(user, rec)
comp = fake.Comp(rec, start=1, end=2)           # nothing selected: the script says so and stops
runpy.run_path({comp_script!r}, init_globals={{"fu": fusion, "comp": comp, "bmd": bmd}})
timeline = fake.Timeline(rec)                    # no clip under the playhead
resolve = fake.Resolve(rec, fake.Project(rec, "P", timeline), fusion)
runpy.run_path({edit_script!r}, init_globals={{"resolve": resolve, "bmd": bmd}})
print(json.dumps({{"modules": sorted(sys.modules), "messages": user.messages}}))
"""


def resolve_like_python(tmp_path) -> Path:
    """A Python whose site-packages hold only numpy, pyzmq and msgpack (linked from this
    environment), like Resolve's Python after the install in docs/resolve.md: torch,
    OpenImageIO and PyAV cannot even be imported there."""
    env_dir = tmp_path / "resolve_python"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    py = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    for name in ("numpy", "numpy.libs", "zmq", "pyzmq.libs", "msgpack"):
        if (ours / name).exists():
            (site / name).symlink_to(ours / name)
    return py


@pytest.mark.timeout(180)
def test_the_menu_scripts_run_without_torch_or_openimageio(tmp_path):
    code = PROBE.format(here=HERE, comp_script=os.path.join(SCRIPTS, "Comp", "focuspull Depth of Field.py"),
                        edit_script=os.path.join(SCRIPTS, "Edit", "focuspull Depth of Field.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOCUSPULL_", "PYTHON"))}
    # The folders the launchers add to sys.path: the client install and the scripts' package.
    env["FOCUSPULL_RESOLVE_LIB"] = os.pathsep.join([os.path.join(REPO, "server"), SCRIPTS])
    py = resolve_like_python(tmp_path)
    no_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True, text=True, env=env)
    assert no_torch.returncode != 0  # the check below means something
    done = subprocess.run([str(py), "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    modules = report["modules"]
    heavy = [m for m in modules if m.split(".")[0] in ("torch", "OpenImageIO", "av", "cv2", "PIL")]
    assert heavy == []
    ours = [m for m in modules if m.split(".")[0] == "focuspull"]
    assert "focuspull.client" in ours and "focuspull.spec.fields" in ours
    assert [m for m in ours if not m.startswith(ALLOWED_FOCUSPULL)] == []
    # Both launchers found the package through FOCUSPULL_RESOLVE_LIB and ran their page script.
    assert "No tool is selected" in report["messages"][0]
    assert "no video clip under the playhead" in report["messages"][1]


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(PACKAGE) if f.endswith(".py")))
def test_the_package_imports_only_the_client_side_of_focuspull(name):
    tree = ast.parse(open(os.path.join(PACKAGE, name)).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    focuspull = {m for m in imported if m.split(".")[0] == "focuspull"}
    assert all(m.startswith(ALLOWED_FOCUSPULL) for m in focuspull), focuspull
    assert not {m.split(".")[0] for m in imported} & {"torch", "OpenImageIO", "av"}


def _capitalised_calls(path):
    tree = ast.parse(open(path).read())
    return {n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr[:1].isupper()}


def test_only_the_adapter_talks_to_resolve_or_fusion():
    """The host API names host.py calls (AddTool, GetCurrentTimeline, ...) appear in no other module."""
    vocabulary = _capitalised_calls(os.path.join(PACKAGE, "host.py"))
    assert {"AddTool", "Render", "GetCurrentVideoItem", "ImportMedia", "AppendToTimeline", "AddWindow"} <= vocabulary
    for name in os.listdir(PACKAGE):
        if name.endswith(".py") and name != "host.py":
            assert _capitalised_calls(os.path.join(PACKAGE, name)) & vocabulary == set(), name
