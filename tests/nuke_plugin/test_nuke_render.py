"""The node against a real ``focuspull serve`` on 127.0.0.1: pixels out through the hidden
Write (real EXRs), the server renders, the group's Read shows the result; compared with
``focuspull render``'s run_job on the same input.  Also the cache, cancel, errors in knob
words, Send to farm and ``nuke -t``."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.commands.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob
from focuspull_nuke.node import INBAND_CHUNK_FRAMES
from nuke_helpers import make_node
from test_service_support import free_port, start_server  # noqa: F401 (fixture)

# Not ``from conftest import``: with tests/resolve_script in the same run, ``conftest`` may be that one.
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

pytestmark = pytest.mark.timeout(180)


def read_exr(path):
    inp = oiio.ImageInput.open(str(path))
    assert inp, oiio.geterror()
    try:
        return inp.read_image(oiio.FLOAT), list(inp.spec().channelnames)
    finally:
        inp.close()


def render(nuke, node):
    """Press Render, wait for the worker, let the main thread run what it queued."""
    from focuspull_nuke import node as fp

    thread = fp.on_render(node)
    if thread is not None:
        thread.join(120)
        assert not thread.is_alive()
    nuke.run_main_queue()
    return thread


def result_pattern(node):
    read = next(c for c in node.children if c.name() == "fp_result")
    return read["file"].value()


def test_render_by_path_equals_focuspull_render_and_the_cache_is_reused_then_invalidated(
        fake_nuke, start_server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    srv = start_server("--root", str(cache))
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    n = make_node(fake_nuke, [1, 2, 3])
    n["fstop"].animate([(1, 1.4, fake_nuke.LINEAR), (3, 2.8, fake_nuke.LINEAR)])
    assert render(fake_nuke, n) is not None
    status = n["status"].value()
    assert status.startswith("3 frame(s) rendered, 0 from the cache"), status
    pattern = result_pattern(n)
    assert pattern.startswith(str(cache)) and pattern.endswith("dof.####.exr")
    # focuspull render (run_job) on the very frames the hidden Write wrote, same job
    from focuspull_nuke import node as fp

    job, _ = fp.knob_job(n)
    job["input"] = {"pattern": str(cache / "FocusPull1" / "input" / "plate.####.exr")}
    job["output"] = {**job.get("output", {}), "pattern": str(tmp_path / "direct" / "dof.####.exr")}
    run_job(RenderJob.from_dict(job))
    for f in (1, 2, 3):
        got, names = read_exr(pattern.replace("####", f"{f:04d}"))
        want, want_names = read_exr(tmp_path / "direct" / f"dof.{f:04d}.exr")
        assert names == want_names and "depth.Z" in names
        np.testing.assert_array_equal(got, want)
    src, _ = read_exr(cache / "FocusPull1" / "input" / "plate.0001.exr")
    assert not np.allclose(got[..., :4], src[..., :4])  # it blurred
    progress = fake_nuke.calls("ProgressTask.setProgress")
    assert progress[-1] == (100,)
    # Render again with the same knobs: the frames are found, no server job, no progress task.
    before = len(fake_nuke.calls("ProgressTask"))
    assert render(fake_nuke, n) is None
    assert len(fake_nuke.calls("ProgressTask")) == before
    assert n["status"].value().startswith("0 frame(s) rendered, 3 from the cache")
    assert result_pattern(n) == pattern
    # A changed knob renders again, into another key's folder.
    n["blades"].setValue(6)
    assert render(fake_nuke, n) is not None
    assert result_pattern(n) != pattern and n["status"].value().startswith("3 frame(s) rendered")


def test_inband_when_the_server_cannot_see_the_cache_folder(fake_nuke, start_server, tmp_path, monkeypatch):
    other = tmp_path / "server_root"
    other.mkdir()
    srv = start_server("--root", str(other))
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    n = make_node(fake_nuke, [4, 5])
    render(fake_nuke, n)
    assert n["status"].value().startswith("2 frame(s) rendered"), n["status"].value()
    from focuspull_nuke import node as fp
    from nuke_helpers import plate

    job, _ = fp.knob_job(n)
    px = plate([4, 5])
    inband = {f: {"rgba": np.stack([px[f][c] for c in ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")], -1),
                  "depth": px[f]["depth.Z"]} for f in (4, 5)}
    expected = run_job(RenderJob.from_dict(job), inband=inband).frames
    for f in (4, 5):
        got, names = read_exr(result_pattern(n).replace("####", f"{f:04d}"))
        assert names == ["R", "G", "B", "A", "depth.Z"]  # written by the node's own EXR writer
        np.testing.assert_array_equal(got[..., :4], expected[f])
        np.testing.assert_array_equal(got[..., 4], px[f]["depth.Z"])
    assert os.listdir(other) == []  # nothing went through the server's file system
    monkeypatch.setenv("FOCUSPULL_TRANSFER", "path")  # by path only: the server says it cannot see the cache
    n["blades"].setValue(5)
    render(fake_nuke, n)
    assert "outside the server roots" in n["status"].value(), n["status"].value()


@pytest.mark.parametrize("transfer", ["path", "inband"])
def test_cancel_mid_range_cancels_the_server_job_and_leaves_only_complete_frames(
        fake_nuke, start_server, tmp_path, monkeypatch, transfer):
    root = tmp_path / ("cache" if transfer == "path" else "elsewhere")
    root.mkdir(exist_ok=True)
    srv = start_server("--root", str(root))
    monkeypatch.setenv("FOCUSPULL_TRANSFER", transfer)
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    n = make_node(fake_nuke, range(1, 31), h=64, w=96)
    # The user presses Cancel once the first frame is in; in-band results come back per job
    # (chunks of INBAND_CHUNK_FRAMES), so there Cancel comes in the second chunk.
    fake_nuke.CANCEL_AFTER = 1 if transfer == "path" else INBAND_CHUNK_FRAMES + 1
    render(fake_nuke, n)
    status = n["status"].value()
    assert status.startswith("cancelled:"), status
    out = os.path.dirname(result_pattern(n))
    names = sorted(os.listdir(out))
    assert 1 <= len(names) < 30, names
    assert all(x.startswith("dof.") and x.endswith(".exr") for x in names), names  # no temp files
    for x in names:
        assert read_exr(os.path.join(out, x))[0].shape == (64, 96, 5)
    assert f"{len(names)} of 30 frame(s) complete" in status
    with srv.client() as c:
        states = [j["state"] for j in c.jobs()]
    if transfer == "path":
        assert states == ["cancelled"]
    else:
        # Whole chunks kept.  Cancel came during the second chunk: that chunk's server job is
        # cancelled, or finished first if the machine is quick (both are right); either way no
        # chunk after it is ever sent.
        assert len(names) % INBAND_CHUNK_FRAMES == 0, names
        assert len(states) == 2 and states[0] == "done" and states[1] in ("cancelled", "done"), states


def test_the_nodes_cancel_knob_cancels_the_running_render(fake_nuke, start_server, tmp_path, monkeypatch):
    from focuspull_nuke import node as fp

    srv = start_server("--root", str(tmp_path / "cache"))
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    n = make_node(fake_nuke, range(1, 31), h=64, w=96)
    pressed = []
    fake_nuke.ON_PROGRESS = lambda i: pressed.append(fp.on_cancel(n))
    render(fake_nuke, n)
    assert pressed[0] is True  # the knob found the running render
    assert n["status"].value().startswith("cancelled:"), n["status"].value()
    assert fp.on_cancel(n) is False  # nothing running any more
    assert len(os.listdir(os.path.dirname(result_pattern(n)))) < 30


def test_focus_on_the_matte_input(fake_nuke, start_server, tmp_path, monkeypatch):
    from focuspull_nuke import node as fp

    cache = tmp_path / "cache"
    srv = start_server("--root", str(cache))
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    n = make_node(fake_nuke, [1, 2])
    n["focus_mode"].setValue("matte")
    render(fake_nuke, n)  # no matte connected, none named: the error says which knob
    assert "focus_matte knob" in n["status"].value(), n["status"].value()
    alpha = np.zeros((24, 32), np.float32)
    alpha[2:6, 20:30] = 1.0  # near the top: depth ~1.2 m there
    matte = fake_nuke.fake_source("Roto1", {f: {"rgba.alpha": alpha} for f in (1, 2)}, 32, 24)
    n.setInput(1, matte)
    render(fake_nuke, n)
    assert n["status"].value().startswith("2 frame(s) rendered"), n["status"].value()
    _, names = read_exr(cache / "FocusPull1" / "input" / "plate.0001.exr")
    assert "mask.a" in names  # the Copy put the matte's alpha there
    job, _ = fp.knob_job(n)
    assert job["focus"]["matte_channel"] == "mask.a"
    job["input"] = {"pattern": str(cache / "FocusPull1" / "input" / "plate.####.exr")}
    job["output"] = {**job.get("output", {}), "pattern": str(tmp_path / "direct" / "dof.####.exr")}
    run_job(RenderJob.from_dict(job))
    got, _ = read_exr(result_pattern(n).replace("####", "0001"))
    np.testing.assert_array_equal(got, read_exr(tmp_path / "direct" / "dof.0001.exr")[0])


def test_server_down_wrong_token_and_bad_knob_give_node_errors_in_knob_words(fake_nuke, start_server, monkeypatch):
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", f"tcp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FOCUSPULL_TIMEOUT", "0.5")
    n = make_node(fake_nuke, [1, 2])
    render(fake_nuke, n)
    status = n["status"].value()
    assert status.startswith("ERROR: FocusPull: no answer from tcp://127.0.0.1:"), status
    assert "FOCUSPULL_ENDPOINT" in status and "focuspull serve" in status
    assert fake_nuke.MESSAGES and "no answer" in fake_nuke.MESSAGES[-1]  # a popup in the GUI
    assert "no server: no answer" in __import__("focuspull_nuke.node").node.on_check_server(n)

    srv = start_server("--token", "right-token")
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", srv.endpoint)
    monkeypatch.setenv("FOCUSPULL_TOKEN", "wrong-token")
    monkeypatch.setenv("FOCUSPULL_TIMEOUT", "5")
    n["fstop"].setValue(2.0)
    render(fake_nuke, n)
    assert "wrong auth token" in n["status"].value() and "FOCUSPULL_TOKEN" in n["status"].value()
    monkeypatch.setenv("FOCUSPULL_TOKEN", "right-token")
    assert n["check_server"] and "devices cpu" in __import__("focuspull_nuke.node").node.on_check_server(n)

    writes = len(fake_nuke.calls("execute"))
    n["fstop"].setValue(0.1)
    render(fake_nuke, n)
    status = n["status"].value()
    assert "fstop knob must be 0.5 .. 1024" in status and "lens.fstop" not in status, status
    assert len(fake_nuke.calls("execute")) == writes  # refused before any pixel moved
    n["fstop"].setValue(2.0)
    n["blades"].setValue(2)
    render(fake_nuke, n)
    assert "blades knob is 2" in n["status"].value(), n["status"].value()


def test_an_input_that_cannot_render_the_range_is_a_node_error(fake_nuke):
    n = make_node(fake_nuke, [1, 2, 3], first=1, last=5)  # the plate has no frames 4 and 5
    render(fake_nuke, n)
    status = n["status"].value()
    assert "rendering the node's input for frames 1-5 failed" in status and "no frame 4" in status, status


def test_send_to_farm_writes_the_range_job(fake_nuke, tmp_path):
    from focuspull_nuke import node as fp

    n = make_node(fake_nuke, [1, 2, 3])
    path = fp.on_send_to_farm(n)
    job = json.load(open(path))
    parsed = RenderJob.from_dict(job)
    assert parsed.frames == (1, 2, 3) and parsed.output.resume
    assert all(os.path.isfile(job["input"]["pattern"].replace("####", f"{f:04d}")) for f in (1, 2, 3))
    assert path in n["status"].value()


SCRIPT = """
import nuke
from nuke_helpers import plate
from focuspull_nuke import node as fp
src = nuke.fake_source("Read1", plate([1, 2, 3]), 32, 24)
n = fp.create()
n.setInput(0, src)
n["first_frame"].setValue(1)
n["last_frame"].setValue(3)
n["fstop"].setValue({fstop})
n["center"].setValue(2.0)
"""


def _nuke_t(tmp_path, endpoint, fstop=1.4, *extra, timeout_s="20"):
    script = tmp_path / f"shot_{fstop}.py"
    script.write_text(SCRIPT.format(fstop=fstop))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
    env.update(FAKE_NUKE_GUI="0", PYTHONPATH=os.pathsep.join([os.path.join(HERE, "fake"), HERE, os.path.join(REPO, "nuke_plugin"),
                                           os.path.join(REPO, "server")]),
               FOCUSPULL_ENDPOINT=endpoint, FOCUSPULL_CACHE=str(tmp_path / "cache"), FOCUSPULL_TIMEOUT=timeout_s,
               FOCUSPULL_PREFS=str(tmp_path / "none.json"))
    return subprocess.run([sys.executable, os.path.join(REPO, "nuke_plugin", "focuspull_render.py"), str(script),
                           "FocusPull1", *extra], capture_output=True, text=True, env=env, timeout=120)


def test_nuke_t_renders_a_range_and_exits_with_the_cli_codes(start_server, tmp_path):
    srv = start_server("--root", str(tmp_path / "cache"))
    done = _nuke_t(tmp_path, srv.endpoint, 1.4, "2", "3")
    assert done.returncode == EXIT_OK, done.stderr
    out = [p for p in (tmp_path / "cache" / "FocusPull1").iterdir() if p.name not in ("input",)]
    assert len(out) == 1 and sorted(x.name for x in out[0].iterdir()) == ["dof.0002.exr", "dof.0003.exr"]
    assert "2 frame(s) rendered" in done.stderr
    bad = _nuke_t(tmp_path, srv.endpoint, 0.1)
    assert bad.returncode == EXIT_USAGE and "fstop knob must be" in bad.stderr, bad.stderr
    down = _nuke_t(tmp_path, f"tcp://127.0.0.1:{free_port()}", 1.4, timeout_s="0.5")
    assert down.returncode == EXIT_FAILED and "no answer" in down.stderr, down.stderr


def test_ctrl_c_in_nuke_t_cancels_the_server_job_and_exits_130(start_server, tmp_path):
    import signal

    # A vanished client would be noticed only after 600 s: a cancelled job here was cancelled by the node.
    srv = start_server("--root", str(tmp_path / "cache"), "--client-timeout-s", "600")
    script = tmp_path / "long.py"
    script.write_text(SCRIPT.format(fstop=1.4).replace("plate([1, 2, 3])", "plate(range(1, 41), 64, 96)")
                      .replace("32, 24)", "96, 64)").replace('setValue(3)', 'setValue(40)'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
    env.update(FAKE_NUKE_GUI="0", FOCUSPULL_ENDPOINT=srv.endpoint, FOCUSPULL_CACHE=str(tmp_path / "cache"),
               FOCUSPULL_PREFS=str(tmp_path / "none.json"), FOCUSPULL_TIMEOUT="20",
               PYTHONPATH=os.pathsep.join([os.path.join(HERE, "fake"), HERE, os.path.join(REPO, "nuke_plugin"),
                                           os.path.join(REPO, "server")]))
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "nuke_plugin", "focuspull_render.py"), str(script),
                             "FocusPull1"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:  # wait for the first finished frame, then press Ctrl-C
            if line.startswith("focuspull:") and "frame " in line:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        assert proc.wait(60) == 130, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in rest
    import time

    with srv.client() as c:
        deadline = time.monotonic() + 60
        while c.jobs()[0]["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker sees the cancel between frames
        jobs = c.jobs()
    assert [j["state"] for j in jobs] == ["cancelled"] and jobs[0]["done"] < 40, jobs
