"""focuspull demo: the procedural shot and a reduced demo run through the real pipeline."""
import os

import numpy as np
import pytest

from focuspull.commands import cli, demo_scene
from focuspull.commands.demo import focus_keys, run_demo
from focuspull.commands.demo_scene import DemoScene
from focuspull.io.images import is_complete_frame, read_image
from focuspull.spec.keyframes import parse_animated


def test_scene_is_deterministic_with_exact_depth_and_hdr_highlights():
    scene = DemoScene(160, 90, 12)
    a, b = scene.frame(3), scene.frame(3)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth_m, b.depth_m)
    assert a.rgb.shape == (90, 160, 3) and a.depth_m.shape == (90, 160)
    assert a.rgb.dtype == np.float32 and a.depth_m.dtype == np.float32
    assert np.isfinite(a.depth_m).all()
    assert a.depth_m.min() == pytest.approx(demo_scene.NEAREST_M, rel=1e-3)
    assert a.depth_m.max() == pytest.approx(demo_scene.FARTHEST_M, rel=1e-3)
    assert a.rgb.max() > 10.0  # bright lights that turn into bokeh balls
    for depth in (demo_scene.PILLAR_DEPTH_M, demo_scene.LANTERN_DEPTH_M):
        assert np.isclose(a.depth_m, depth, atol=0.02).sum() > 20  # each object is there
    # Something moves: the ball is elsewhere later in the shot.
    start, end = (56, 40), (56, 112)  # the ball's centre on the first and the last frame
    first, last = scene.frame(0).depth_m, scene.frame(11).depth_m
    assert first[start] < demo_scene.BALL_DEPTH_M - 0.1 and last[end] < demo_scene.BALL_DEPTH_M - 0.1
    assert last[start] > demo_scene.BALL_DEPTH_M and first[end] > demo_scene.BALL_DEPTH_M


def test_focus_racks_from_near_to_far():
    rack = parse_animated(focus_keys(1001, 1048))
    assert rack.value_at(1001) == demo_scene.PILLAR_DEPTH_M
    assert rack.value_at(1048) == demo_scene.WALL_DEPTH_M
    samples = [rack.value_at(f) for f in range(1001, 1049)]
    assert all(b >= a for a, b in zip(samples, samples[1:]))  # never racks back
    assert demo_scene.BALL_DEPTH_M in samples  # holds on the ball on the way
    for last in (1002, 1003, 1005):  # short (test) shots still rack from near to far
        short = parse_animated(focus_keys(1001, last))
        assert short.value_at(1001) == demo_scene.PILLAR_DEPTH_M
        assert short.value_at(last) == demo_scene.WALL_DEPTH_M


def test_reduced_demo_writes_valid_files(tmp_path):
    info = run_demo(str(tmp_path / "demo"), frame_count=4, width=96, height=54, log=lambda text: None)
    frames = [1001, 1002, 1003, 1004]
    assert info["frames"] == frames
    for f in frames:
        src = str(tmp_path / "demo" / "input" / f"demo.{f}.exr")
        out = str(tmp_path / "demo" / "output" / f"demo_dof.{f}.exr")
        assert is_complete_frame(src, (54, 96, 4), ["R", "G", "B", "Z"])
        assert is_complete_frame(out, (54, 96, 4), ["R", "G", "B", "Z"])
    # First frame focused on the near pillar (1.6 m): the pillar stays sharp, the far wall blurs.
    first_in = read_image(str(tmp_path / "demo" / "input" / "demo.1001.exr"))
    first_out = read_image(str(tmp_path / "demo" / "output" / "demo_dof.1001.exr"))
    depth = first_in.channel("Z")
    pillar = np.abs(depth - demo_scene.PILLAR_DEPTH_M) < 1e-3
    interior = pillar & np.roll(pillar, 3, 1) & np.roll(pillar, -3, 1)
    wall = np.abs(depth - demo_scene.WALL_DEPTH_M) < 1e-3
    diff = np.abs(first_out.pixels[:, :, :3] - first_in.pixels[:, :, :3]).mean(axis=2)
    assert interior.sum() > 20 and diff[interior].mean() < 1e-3
    assert diff[wall].mean() > 10 * max(diff[interior].mean(), 1e-4)
    # Last frame focused on the wall: now the pillar is the blurred one.
    last_in = read_image(str(tmp_path / "demo" / "input" / "demo.1004.exr"))
    last_out = read_image(str(tmp_path / "demo" / "output" / "demo_dof.1004.exr"))
    last_pillar = np.abs(last_in.channel("Z") - demo_scene.PILLAR_DEPTH_M) < 1e-3
    last_diff = np.abs(last_out.pixels[:, :, :3] - last_in.pixels[:, :, :3]).mean(axis=2)
    last_wall = np.abs(last_in.channel("Z") - demo_scene.WALL_DEPTH_M) < 1e-3
    assert last_diff[last_pillar].mean() > 5 * last_diff[last_wall].mean()

    av = pytest.importorskip("av")
    with av.open(info["preview"]) as container:
        assert len(list(container.decode(video=0))) == 4

    sheet = read_image(info["contact_sheet"], transfer="linear")  # display code values, through the view
    thumb_w, thumb_h = 96 // 3, 54 // 3
    assert sheet.pixels.shape[:2] == (2 * thumb_h + 4, 6 * thumb_w + 5 * 4)
    assert 0.0 <= sheet.pixels.min() and sheet.pixels.max() <= 1.0 + 1e-6
    top, bottom = sheet.pixels[:thumb_h], sheet.pixels[thumb_h + 4:]
    assert np.abs(top - bottom).mean() > 1e-3  # the render row is not the input row
    assert os.path.basename(info["contact_sheet"]) == "contact_sheet.png"


def test_demo_command_prints_where_everything_went(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--frames", "2", "--width", "64", "--height", "36",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    for needle in ("input frames", "rendered", "preview movie", "contact sheet", "focuspull render"):
        assert needle in out
    assert os.path.isfile(tmp_path / "d" / "contact_sheet.png")
    assert cli.main(["demo", "--out", str(tmp_path / "e"), "--frames", "1"]) == 2
