"""The template under the real runner (``openjd run``, as the current user): every task
succeeds, no frame is rendered by two chunks, the frames equal one ``focuspull render`` bit
for bit, the preview covers them, and a task killed mid-chunk reruns to complete frames."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml

from focuspull.commands import cli
from focuspull.farm.openjd import RENDER_STEP, chunks
from focuspull.io.atomic import is_temp_path
from focuspull.io.images import is_complete_frame, read_image
from focuspull.io.metadata import FINGERPRINT_KEY

# Animated focus (keyframes live in the job file only) and depth stabilisation over +-1
# frame: chunk borders cut through the temporal window, so a chunk must read its context.
LOOK = ["--focal-length", "35", "--fstop", "1.4", "--focus-distance", "1:1.2,5:5@smooth", "--stabilise", "1",
        "--blades", "6", "--rotation", "10"]
CHUNK_LOG = re.compile(r"Frame\((?:CHUNK\[INT\]|STRING)\) = (\S+)")


def farm_setup(clip, tmp_path, chunk_size, *extra):
    out = str(tmp_path / "farm out" / "p_dof.####.exr")  # a space in a path
    target = str(tmp_path / "t")
    assert cli.main(["farm", "template", clip, out, *LOOK, "--chunk-size", str(chunk_size),
                     "--out-dir", target, *extra]) == 0
    template = os.path.join(target, "template.yaml")
    params = os.path.join(target, "parameters.yaml")
    return template, params, out


def reference(clip, tmp_path, frames="1-5"):
    """One ``focuspull render`` over the range with the same options, no job file."""
    ref = str(tmp_path / "ref" / "p_dof.####.exr")
    assert cli.main(["render", clip, ref, *LOOK, "--frames", frames, "--quiet"]) == 0
    return ref


def assert_same_frames(out, ref, frames):
    for f in frames:
        a, b = read_image(out.replace("####", f"{f:04d}")), read_image(ref.replace("####", f"{f:04d}"))
        assert a.channel_names == b.channel_names == ["R", "G", "B", "Z"]
        assert a.pixels.dtype == b.pixels.dtype and np.array_equal(a.pixels, b.pixels), f"frame {f} differs"
        assert a.metadata.get(FINGERPRINT_KEY) == b.metadata.get(FINGERPRINT_KEY), "not the same render"


@pytest.mark.parametrize("listed", [False, True], ids=["TASK_CHUNKING", "listed-chunks"])
def test_openjd_run_renders_every_chunk_and_the_preview(clip, tmp_path, openjd, listed):
    template, params, out = farm_setup(clip, tmp_path, 2, *(["--listed-chunks"] if listed else []))
    # Listed chunks need no extension: the runner is told to accept none.
    result = openjd("run", template, "-p", f"file://{params}", *(["--extensions", ""] if listed else []))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "Session ended successfully" in log

    # Each task got its own frames: the chunks cover 1-5 once, at most 2 frames each.
    from focuspull.io.frames import parse_frame_range

    given = [parse_frame_range(text) for text in CHUNK_LOG.findall(log)]
    assert given == chunks(range(1, 6), 2) == [[1, 2], [3, 4], [5]]
    assert log.count("focuspull: rendered 2 frames") == 2 and log.count("focuspull: rendered 1 frame ") == 1
    # The preview step rendered nothing: it read the finished frames back.
    assert "rendered 0 frames, skipped 5 already complete" in log

    ref = reference(clip, tmp_path)
    assert_same_frames(out, ref, range(1, 6))
    av = __import__("av")
    with av.open(str(tmp_path / "farm out" / "p_dof.mp4")) as movie:
        assert sum(1 for _ in movie.decode(video=0)) == 5


# Runs the task's own command line, but SIGKILLs the process inside its second frame's write:
# that frame's temp file is written half (truncated) and never renamed.  Deterministic: the
# kill comes from the write path itself, not from a timer racing the render.
KILLED_MID_CHUNK = r"""
import os, signal, sys
import focuspull.io.atomic as atomic
writes = []
def fsync_then_die(path, _real=atomic.fsync_path):
    writes.append(path)
    if len(writes) == 2:
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    _real(path)
atomic.fsync_path = fsync_then_die
from focuspull.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def task_command(template_path, params_path, chunk):
    """The Render step's argv for one chunk, with the parameter values filled in."""
    with open(template_path) as fh:
        template = yaml.safe_load(fh)
    with open(params_path) as fh:
        values = yaml.safe_load(fh)
    (step,) = [s for s in template["steps"] if s["name"] == RENDER_STEP]
    action = step["script"]["actions"]["onRun"]

    def fill(text):
        text = text.replace("{{Task.Param.Frame}}", chunk)
        return re.sub(r"\{\{Param\.(\w+)\}\}", lambda m: str(values[m.group(1)]), text)
    return [fill(action["command"]), *map(fill, action["args"])]


def test_task_killed_mid_chunk_reruns_to_complete_frames(clip, tmp_path, openjd, runner_env):
    template, params, out = farm_setup(clip, tmp_path, chunk_size=3)
    command = task_command(template, params, "1-3")
    assert command[0] == "focuspull" and command[command.index("--frames") + 1] == "1-3"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_CHUNK, *command[1:]], env=runner_env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    out_dir = os.path.dirname(out)
    frame = {f: out.replace("####", f"{f:04d}") for f in range(1, 6)}
    temps = [n for n in os.listdir(out_dir) if is_temp_path(n)]
    # Killed inside frame 2: frame 1 complete, frame 2 only a half-written temp, frame 3 never begun.
    assert os.path.exists(frame[1]) and not os.path.exists(frame[2]) and not os.path.exists(frame[3])
    assert len(temps) == 1 and ".p_dof.0002.exr." in temps[0]
    assert is_complete_frame(frame[1]) and not is_complete_frame(os.path.join(out_dir, temps[0]))
    before = os.stat(frame[1])

    # The runner reruns that chunk (the same task): only the missing frames are rendered.
    result = openjd("run", template, "-p", f"file://{params}", "--step", RENDER_STEP,
                    "--task-param", "Frame=1-3")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "rendered 2 frames, skipped 1 already complete" in log
    after = os.stat(frame[1])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "frame 1 was redone"
    assert not [n for n in os.listdir(out_dir) if is_temp_path(n)], "the killed task's temp is left"
    assert not os.path.exists(frame[4]), "a task wrote a frame another chunk owns"
    assert_same_frames(out, reference(clip, tmp_path, "1-3"), range(1, 4))
