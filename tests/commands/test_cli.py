"""The focuspull command line: registry, help, option mapping, exit codes, Ctrl-C; progress."""
import io
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from focuspull.commands import cli
from focuspull.commands import render as render_cmd
from focuspull.io.images import is_complete_frame, write_image
from focuspull.spec.job import RenderJob
from focuspull.pipeline.progress import ProgressLine, Throughput, format_duration

H, W = 48, 64
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def make_sequence(directory, frames=range(1, 4), size=(H, W)):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(1)
    h, w = size
    for f in frames:
        rgb = rng.random((h, w, 3)).astype(np.float32)
        z = np.full((h, w, 1), 6.0, np.float32)
        z[:, : w // 3] = 1.5
        write_image(os.path.join(directory, f"p.{f:04d}.exr"), np.concatenate([rgb, z], 2), ["R", "G", "B", "Z"])
    return os.path.join(directory, "p.####.exr")


def focuspull(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "focuspull.commands.cli", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=120, **kwargs)


def parse(*argv):
    return cli.build_parser("render", render_cmd).parse_args(list(argv))


# --------------------------------------------------------------------------- registry, help
def test_every_command_is_registered_by_module_path():
    assert cli.COMMANDS["render"] == "focuspull.commands.render"
    assert cli.COMMANDS["demo"] == "focuspull.commands.demo"
    assert set(cli.COMMANDS) >= {"render", "demo", "serve", "submit"}


def test_render_help_is_grouped_with_units_and_examples(capsys):
    assert cli.main(["render", "--help"]) == 0
    text = capsys.readouterr().out
    for needle in ("lens (physical)", "focus (one of)", "depth", "bokeh", "frames and output",
                   "--focal-length MM", "--focus-distance M", "--focus-point X,Y[@FRAME]", "in metres",
                   "examples:", "exit codes:", "130", "@smooth"):
        assert needle in text, needle


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "render" in out and "demo" in out and "exit codes" in out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_of_every_command_does_not_import_torch(command):
    code = (f"import sys; from focuspull.commands.cli import main; rc = main([{command!r}, '--help']); "
            "print('TORCH', 'torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.stdout.strip().endswith("TORCH False 0")


def test_missing_command_module_gives_a_clean_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "ghost", "focuspull.commands.ghost_not_there")
    assert cli.main(["ghost"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuspull: error: the 'ghost' command is not available") and "hint:" in err
    assert "Traceback" not in err


def test_unknown_command_and_bad_option_are_usage_errors(capsys):
    assert cli.main(["rendr"]) == 2
    assert "unknown command 'rendr'" in capsys.readouterr().err
    assert cli.main(["render", "a.####.exr", "b.####.exr", "--no-such-option"]) == 2


def _fake_command(monkeypatch, exc):
    module = types.SimpleNamespace(HELP="fake", add_arguments=lambda p: None, run=lambda a: (_ for _ in ()).throw(exc))
    monkeypatch.setitem(sys.modules, "focuspull_fake_cmd", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", "focuspull_fake_cmd")


@pytest.mark.parametrize("exc, code", [
    (__import__("focuspull.errors").errors.LensError("bad lens", "fix it"), 2),
    (__import__("focuspull.errors").errors.ModelError("no weights", "copy them"), 2),
    (__import__("focuspull.errors").errors.ProtocolError("server said no", "retry"), 3),
    (__import__("focuspull.errors").errors.Cancelled("cancelled", "resume"), 130),
    (RuntimeError("boom"), 3),
    (KeyboardInterrupt(), 130),
])
def test_exit_codes_and_error_format(monkeypatch, capsys, exc, code):
    _fake_command(monkeypatch, exc)
    assert cli.main(["fake"]) == code
    err = capsys.readouterr().err
    assert err.startswith("focuspull: error: ") and "\n  hint: " in err and "Traceback" not in err


# --------------------------------------------------------------------------- option mapping
def test_options_become_the_job_a_compositor_means():
    args = parse("in.####.exr", "out.####.exr", "--focal-length", "35", "--fstop", "1001:2,1010:4@smooth",
                 "--focus-point", "320,200@1005", "--focus-smooth", "3", "--blades", "6", "--rotation", "12",
                 "--depth", "d.####.exr", "--depth-math", "far=0", "--stabilise", "2", "--frames", "1001-1010x3",
                 "--resume", "--float", "--preview", "p.mp4", "--compression", "piz")
    job = RenderJob.from_dict(render_cmd.job_dict_from_args(args))
    assert job.lens.focal_length_mm.value_at(1001) == 35
    assert job.lens.fstop.interpolation == "smooth" and job.lens.fstop.value_at(1010) == 4
    assert (job.focus.mode, job.focus.track_from_frame, job.focus.smoothing_window) == ("point", 1005, 3)
    assert job.focus.point_x.value_at(0) == 320 and job.focus.point_y.value_at(0) == 200
    assert (job.depth.kind, job.depth.pattern, job.depth.depth_math) == ("sequence", "d.####.exr", "far=0")
    assert job.frames == (1001, 1004, 1007, 1010)
    assert job.output.resume and not job.output.half and job.output.compression == "piz"
    assert (job.aperture.blades.value_at(0), job.aperture.rotation_deg.value_at(0)) == (6, 12.0)


def test_cg_camera_reaches_the_lens_of_every_frame():
    from focuspull.pipeline.plan import LensPlan

    plain = RenderJob.from_dict(render_cmd.job_dict_from_args(parse("a.####.exr", "b.####.exr")))
    cg = RenderJob.from_dict(render_cmd.job_dict_from_args(parse("a.####.exr", "b.####.exr", "--cg-camera")))
    assert not plain.lens.cg_camera and cg.lens.cg_camera
    assert RenderJob.from_dict(cg.to_dict()).lens.cg_camera
    # Same settings, less blur: the image plane stays at the focal length.
    assert LensPlan(cg, 1000).at(1).k_px < LensPlan(plain, 1000).at(1).k_px


def test_command_line_overrides_the_camera_file(tmp_path):
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps({"fps": 25, "frames": {
        "1": {"focal_length_mm": 35, "fstop": 2.8, "focus_distance_m": 2.0, "sensor_width_mm": 24},
        "11": {"focal_length_mm": 85, "fstop": 2.8, "focus_distance_m": 4.0, "sensor_width_mm": 24}}}))
    job = RenderJob.from_dict(render_cmd.job_dict_from_args(
        parse("a.####.exr", "b.####.exr", "--camera", str(cam), "--fstop", "1.4")))
    assert job.lens.focal_length_mm.value_at(6) == pytest.approx(60)  # from the camera
    assert job.lens.fstop.value_at(6) == 1.4                          # the option wins
    assert job.focus.distance_m.value_at(6) == pytest.approx(3.0)
    assert job.lens.sensor_width_mm.value_at(1) == 24 and job.output.preview_fps == 25


@pytest.mark.parametrize("argv, needle", [
    (["--focus-distance", "3", "--focus-point", "1,2"], "both set the focus"),
    (["--size", "10", "--fstop", "2"], "both set the blur"),
    (["--focus-point", "12"], "X,Y"),
    (["--depth-math", "disparity_norm"], "metric depth"),
    (["--frames", "10-1"], "10-1"),
])
def test_conflicting_or_malformed_options_exit_2_with_a_hint(capsys, argv, needle):
    assert cli.main(["render", "a.####.exr", "b.####.exr", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuspull: error:") and needle in err and "  hint: " in err


@pytest.mark.parametrize("argv, needle, hint", [
    (["--focus-distance", "0"], "--focus-distance must be 0.001 .. 1e+06 m", "--focus-distance"),
    (["--focus-distance", "1:3,10:-1"], "frame 10", "--focus-distance"),
    (["--max-size", "-1"], "--max-size must be 0 .. 1024 px", "--max-size"),
    (["--max-size", "nan"], "not a number", "--max-size"),  # animatable: keyframe text
    (["--preview-fps", "nan"], "finite", "--preview-fps"),
    (["--plane-spacing", "inf"], "finite", "--plane-spacing"),
    (["--rotation", "nan"], "not a number", "--rotation"),
    (["--highlight-threshold", "0.9", "--highlight-gain", "nan"], "finite", "--highlight-gain"),
    (["--compression", "zstd"], "compression", "dwaa:45"),
])
def test_impossible_numbers_exit_2_with_a_hint_naming_the_option(capsys, argv, needle, hint):
    assert cli.main(["render", "a.####.exr", "b.####.exr", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuspull: error:") and needle in err and "Traceback" not in err
    assert hint in err.split("hint:", 1)[1]


def test_camera_file_focus_distance_must_be_positive(tmp_path, capsys):
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps({"frames": {"1": {"focus_distance_m": 2.0}, "5": {"focus_distance_m": 0.0}}}))
    assert cli.main(["render", "a.####.exr", "b.####.exr", "--camera", str(cam)]) == 2
    err = capsys.readouterr().err
    assert "frame 5" in err and "camera file" in err


@pytest.mark.parametrize("compression", ["dwaa:45", "htj2k"])
def test_every_compression_io_writes_is_accepted(compression):
    job = RenderJob.from_dict(render_cmd.job_dict_from_args(parse("a.####.exr", "b.####.exr",
                                                                  "--compression", compression)))
    assert job.output.compression == {"htj2k": "htj2k256"}.get(compression, compression)


def test_focus_disparity_help_says_what_the_number_is_per_depth_math(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside "--depth-math"
    assert cli.main(["render", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    help_text = text[text.index("--focus-disparity D focus"):]
    for needle in ("1/metres with depth math depth", "far=0", "disparity_norm (0..1, near = 1"):
        assert needle in help_text, needle
    assert "depth-map value" not in text


@pytest.mark.parametrize("device, hint", [("nonsense", "cpu, cuda or cuda:N"), ("cuda", "set --device to cpu")])
def test_unusable_device_exits_2_with_a_hint(tmp_path, capsys, device, hint):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    pattern = make_sequence(tmp_path / "in", frames=[1])
    code = cli.main(["render", pattern, str(tmp_path / "out" / "o.####.exr"), "--device", device, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert hint in err and "report" not in err
    assert not os.listdir(tmp_path / "out") if (tmp_path / "out").exists() else True


def test_print_job_outputs_a_job_the_server_accepts(capsys):
    assert cli.main(["render", "a.####.exr", "b.####.exr", "--fstop", "2", "--print-job"]) == 0
    job = RenderJob.from_dict(json.loads(capsys.readouterr().out))
    assert job.lens.fstop.value_at(0) == 2 and job.output.pattern == "b.####.exr"


# --------------------------------------------------------------------------- real runs
def test_render_end_to_end_refuse_then_resume(tmp_path):
    pattern = make_sequence(tmp_path / "in")
    out = tmp_path / "out" / "r.####.exr"
    first = focuspull("render", pattern, out, "--fstop", "2", "--focus-distance", "1.5")
    assert first.returncode == 0, first.stderr
    assert "rendered 3 frames" in first.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["r.0001.exr", "r.0002.exr", "r.0003.exr"]
    again = focuspull("render", pattern, out, "--fstop", "2", "--focus-distance", "1.5")
    assert again.returncode == 2
    assert "already exist" in again.stderr and "1-3" in again.stderr and "hint: use --resume" in again.stderr
    resumed = focuspull("render", pattern, out, "--fstop", "2", "--focus-distance", "1.5", "--resume")
    assert resumed.returncode == 0 and "skipped 3" in resumed.stdout


def test_missing_input_exits_2_without_traceback(tmp_path):
    result = focuspull("render", tmp_path / "nothing.####.exr", tmp_path / "o.####.exr")
    assert result.returncode == 2
    assert result.stderr.startswith("focuspull: error:") and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_exits_130_and_leaves_only_complete_frames(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 41), size=(96, 128))
    out_dir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "focuspull.commands.cli", "render", pattern, str(out_dir / "o.####.exr"),
                             "--fstop", "1.4", "--focus-distance", "1.5", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (out_dir.exists() and any(
            n.endswith(".exr") and not n.startswith(".") for n in os.listdir(out_dir))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    names = os.listdir(out_dir)
    assert 1 <= len(names) < 40
    assert all(not n.startswith(".") for n in names), names  # no temp file left behind
    assert all(is_complete_frame(str(out_dir / n), (96, 128, 4), ["R", "G", "B", "Z"]) for n in names)


# --------------------------------------------------------------------------- progress
def _event(done, total=4, fps=2.0, eta=1.0, frame=1000):
    return {"type": "frame", "frame": frame + done, "done": done, "total": total, "fps": fps, "eta_s": eta,
            "path": None}


def test_progress_rewrites_one_line_on_a_tty():
    stream = io.StringIO()
    line = ProgressLine(stream, is_tty=True)
    for done in range(1, 5):
        line(_event(done, eta=4 - done))
    line.close()
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "4/4 frames 100%" in text and "ETA 0:00" in text


def test_progress_off_a_tty_prints_every_nth_frame_and_the_last():
    stream = io.StringIO()
    line = ProgressLine(stream, every=3, is_tty=False)
    for done in range(1, 8):
        line(_event(done, total=7))
    lines = stream.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == ["3/7", "6/7", "7/7"]
    assert "\r" not in stream.getvalue()


def test_throughput_and_eta_follow_the_clock():
    now = [100.0]
    meter = Throughput(10, clock=lambda: now[0])
    now[0] += 2.0
    fps, eta = meter.tick()
    assert fps == pytest.approx(0.5) and eta == pytest.approx(18.0)
    now[0] += 2.0
    fps, eta = meter.tick()
    assert fps == pytest.approx(0.5) and eta == pytest.approx(16.0)
    assert format_duration(75.4) == "1:15" and format_duration(3725) == "1:02:05"
    assert format_duration(float("inf")) == "--:--"


@pytest.mark.parametrize("widths", ["99999999", "-8", "12", "8,8,8,8", "abc"])
def test_train_refuses_an_unbounded_or_odd_context_level_before_any_work(tmp_path, capsys, widths):
    assert cli.main(["train", "--stage", "1", "--out", str(tmp_path / "run"), "--grow-context", widths]) == 2
    assert "--grow-context" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before a model was built or a folder made


# --------------------------------------------------------------------------- the exit
_EXITS = """
import atexit, sys
from focuspull.commands.cli import exit_now
atexit.register(lambda: open(sys.argv[1], "w").write("exit handler ran"))
sys.stdout.write("buffered, no newline")  # a pipe: block-buffered until flushed
sys.stderr.write("and on stderr")
exit_now(3)
"""


def test_exit_now_flushes_the_streams_and_runs_the_exit_handlers(tmp_path):
    marker = tmp_path / "marker"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", _EXITS, str(marker)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline" and done.stderr == "and on stderr"
    assert marker.read_text() == "exit handler ran"


def test_exit_now_leaves_a_running_thread_to_the_ordinary_exit(monkeypatch):
    """A non-daemon thread still running: Python's own exit, which waits for it."""
    import threading

    handlers, hard = [], []
    monkeypatch.setattr("atexit._run_exitfuncs", lambda: handlers.append(1))
    monkeypatch.setattr(os, "_exit", lambda code: hard.append(code))
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as stop:
            cli.exit_now(0)
        assert stop.value.code == 0 and handlers == [] and hard == []
    finally:
        release.set()
        worker.join()
    cli.exit_now(2)  # nothing running now: the quick way, after the exit handlers
    assert handlers == [1] and hard == [2]


def test_the_console_script_and_python_m_run_the_quick_exit():
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as fh:
        assert tomllib.load(fh)["project"]["scripts"]["focuspull"] == "focuspull.commands.cli:console"
    done = subprocess.run([sys.executable, "-m", "focuspull", "--version"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("focuspull ")
