"""focuspull.io.preflight: one error listing every problem of a sequence, from headers only."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.errors import InputError, SequenceError
from focuspull.io.frames import SequencePattern, parse_frame_range
from focuspull.io.images import write_image
from focuspull.io.preflight import preflight

H, W = 12, 16


def _frame(path, names=("R", "G", "B", "A", "Z"), shape=(H, W), **kw):
    pixels = np.full((*shape, len(names)), 0.25, np.float32)
    write_image(path, pixels, list(names), **kw)


def _sequence(tmp_path, frames, **kw):
    for frame in frames:
        _frame(tmp_path / f"shot.{frame:04d}.exr", **kw)
    return str(tmp_path / "shot.####.exr")


def test_good_sequence_reports_size_channels_and_depth(tmp_path):
    pattern = _sequence(tmp_path, range(1001, 1006),
                        metadata={"pixelAspectRatio": 2.0, "timecode": "10:00:00:00"})
    info = preflight(pattern, parse_frame_range("1001-1005"))
    assert (info.width, info.height) == (W, H)
    assert info.depth_channel == "Z"
    assert set(info.channel_names) == {"R", "G", "B", "A", "Z"}
    assert info.metadata_of_first["pixelAspectRatio"] == 2.0
    assert info.metadata_of_first["timecode"] == "10:00:00:00"
    assert info.frames == [1001, 1002, 1003, 1004, 1005]
    assert preflight(SequencePattern(pattern), [1003], depth_channel="A").depth_channel == "A"


def test_all_problems_in_one_error(tmp_path):
    frames = parse_frame_range("1001-1021")
    present = [f for f in frames if not (1004 <= f <= 1010 or f == 1020)]
    pattern = _sequence(tmp_path, present)
    _frame(tmp_path / "shot.1012.exr", shape=(H + 2, W))              # wrong size
    _frame(tmp_path / "shot.1015.exr", names=("R", "G", "B", "A"))    # no depth
    with pytest.raises(SequenceError) as err:
        preflight(pattern, frames)
    message = err.value.message
    assert "8 missing frames 1004-1010, 1020" in message
    assert "shot.1012.exr is 16x14" in message and "not 16x12" in message
    assert "shot.1015.exr (channels R,G,B,A)" in message and "'Z'" in message
    assert err.value.hint


def test_no_depth_channel_names_file_and_channels(tmp_path):
    pattern = _sequence(tmp_path, [1, 2], names=("R", "G", "B", "A"))
    with pytest.raises(SequenceError) as err:
        preflight(pattern, [1, 2])
    assert "shot.0001.exr" in err.value.message and "R,G,B,A" in err.value.message
    with pytest.raises(SequenceError) as err:
        preflight(pattern, [1, 2], depth_channel="depth.Z")
    assert "'depth.Z' not found" in err.value.message and "R,G,B,A" in err.value.message
    # depth from a model: not an error, no channel
    assert preflight(pattern, [1, 2], depth_required=False).depth_channel is None


def test_layered_depth_is_found(tmp_path):
    pattern = _sequence(tmp_path, [7], names=("R", "G", "B", "A", "depth.Z"))
    assert preflight(pattern, [7]).depth_channel == "depth.Z"


def test_separate_depth_sequence(tmp_path):
    pattern = _sequence(tmp_path, [1, 2, 3], names=("R", "G", "B"))
    for frame in (1, 2, 3):
        _frame(tmp_path / f"depth.{frame:04d}.png", names=("Y",), bits=16)
    info = preflight(pattern, [1, 2, 3], depth_pattern=str(tmp_path / "depth.%04d.png"))
    assert info.depth_channel == "Y" and info.depth_channel_names == ["Y"]
    assert info.depth_pattern == str(tmp_path / "depth.%04d.png")
    # a depth frame missing and one of the wrong size: both reported
    (tmp_path / "depth.0002.png").unlink()
    _frame(tmp_path / "depth.0003.png", names=("Y",), shape=(H, W * 2))
    with pytest.raises(SequenceError) as err:
        preflight(pattern, [1, 2, 3], depth_pattern=str(tmp_path / "depth.%04d.png"))
    assert "depth: 1 missing frame 2" in err.value.message
    assert "depth.0003.png is 32x12" in err.value.message


def test_missing_everything_and_empty_range(tmp_path):
    with pytest.raises(SequenceError) as err:
        preflight(str(tmp_path / "nothing.####.exr"), range(1, 101))
    assert "100 missing frames 1-100" in err.value.message
    with pytest.raises(InputError):
        preflight(str(tmp_path / "nothing.####.exr"), [])


def test_unreadable_file_is_listed(tmp_path):
    pattern = _sequence(tmp_path, [1, 2])
    (tmp_path / "shot.0003.exr").write_bytes(b"garbage, not an exr")
    with pytest.raises(SequenceError) as err:
        preflight(pattern, [1, 2, 3])
    assert "cannot open shot.0003.exr" in err.value.message


def test_single_image_serves_all_frames(tmp_path):
    _frame(tmp_path / "still.exr")
    info = preflight(str(tmp_path / "still.exr"), range(1, 50))
    assert (info.width, info.height, info.depth_channel) == (W, H, "Z")


def test_only_headers_are_read(tmp_path):
    """Preflight is fast because it never decodes pixels: a frame truncated after its
    header passes here (the render's read reports it, and --resume redoes it)."""
    pattern = _sequence(tmp_path, [1, 2])
    path = tmp_path / "shot.0002.exr"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    assert preflight(pattern, [1, 2]).depth_channel == "Z"


def test_frames_with_other_colour_or_alpha_channels_are_listed_together(tmp_path):
    pattern = _sequence(tmp_path, [1, 2, 4])
    _frame(tmp_path / "shot.0003.exr", names=("R", "G", "B", "Z"))      # no alpha
    _frame(tmp_path / "shot.0005.exr", names=("Y", "A", "Z"))           # grey
    with pytest.raises(SequenceError) as info:
        preflight(pattern, range(1, 6))
    message = info.value.message
    assert "2 frames with other colour/alpha channels than shot.0001.exr (R,G,B,A)" in message
    assert "shot.0003.exr (R,G,B)" in message and "shot.0005.exr (Y,A)" in message
    assert "shot.0002.exr" not in message and info.value.hint
    # Extra data channels (a matte, a second depth) are fine as long as the picture matches.
    _frame(tmp_path / "shot.0003.exr", names=("R", "G", "B", "A", "Z", "matte.A"))
    _frame(tmp_path / "shot.0005.exr", names=("R", "G", "B", "A", "Z"))
    assert preflight(pattern, range(1, 6)).depth_channel == "Z"


def test_required_channels_are_checked_on_every_frame(tmp_path):
    pattern = _sequence(tmp_path, [1, 2], names=("R", "G", "B", "Z", "matte.A"))
    _frame(tmp_path / "shot.0003.exr", names=("R", "G", "B", "Z"))
    assert preflight(pattern, [1, 2], required_channels=["matte.A"]).depth_channel == "Z"
    with pytest.raises(SequenceError, match=r"channel 'matte.A' missing from shot.0003.exr"):
        preflight(pattern, [1, 2, 3], required_channels=["matte.A"])


# -- every frame's depth before the first render; gaps (issue 13) -------------------------------
def _plate(tmp_path, frames, bad=None, h=H, w=W):
    """RGBA + Z (metres) frames; ``bad = {frame: "nan" | "negative"}`` spoils one depth pixel."""
    for frame in frames:
        pixels = np.full((h, w, 5), 0.25, np.float32)
        pixels[..., 4] = np.linspace(1.0, 6.0, h * w, dtype=np.float32).reshape(h, w)
        kind = (bad or {}).get(frame)
        if kind:
            pixels[h // 2, w // 2, 4] = np.nan if kind == "nan" else -2.0
        write_image(tmp_path / "in" / f"shot.{frame:04d}.exr", pixels, ["R", "G", "B", "A", "Z"], half=False)
    return str(tmp_path / "in" / "shot.####.exr")


def _job(src, out, frames=()):
    from focuspull.spec.job import RenderJob

    return RenderJob.from_dict({"input": {"pattern": src}, "frames": list(frames),
                                "lens": {"mode": "physical", "focal_length_mm": 50.0, "fstop": 1.4},
                                "focus": {"mode": "distance", "distance_m": 2.0},
                                "output": {"pattern": out, "half": False}})


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])


@pytest.mark.parametrize("spoil", ["nan", "negative", "truncated"])
def test_a_bad_depth_frame_mid_range_fails_before_any_frame_renders(tmp_path, spoil):
    from focuspull.pipeline.run import run_job

    (tmp_path / "in").mkdir()
    src = _plate(tmp_path, range(1, 9), bad={6: spoil} if spoil != "truncated" else None, h=64, w=64)
    if spoil == "truncated":
        _truncate(tmp_path / "in" / "shot.0006.exr")
    with pytest.raises(SequenceError) as info:
        run_job(_job(src, str(tmp_path / "out" / "o.####.exr")))
    assert "6" in info.value.message and ("truncated" in info.value.message) == (spoil == "truncated")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing rendered


def test_bad_depth_far_lets_nan_depth_through(tmp_path):
    from focuspull.pipeline.run import run_job

    (tmp_path / "in").mkdir()
    src = _plate(tmp_path, range(1, 4), bad={2: "nan"})
    job = _job(src, str(tmp_path / "out" / "o.####.exr"))
    job = job.replace(depth=job.depth.__class__(bad_depth="far"))
    assert run_job(job).rendered == [1, 2, 3]


def test_every_bad_frame_is_listed_in_one_error():
    from focuspull.io.preflight import check_depth_values

    def check(frame, depth):
        if not np.isfinite(depth).all():
            raise InputError("depth has NaN", "")

    depths = {f: np.full((2, 2), np.nan if f in (3, 4, 9) else 1.0, np.float32) for f in range(1, 11)}
    with pytest.raises(SequenceError) as info:
        check_depth_values(depths.__getitem__, sorted(depths), check)
    assert "3 frames (3-4, 9)" in info.value.message


def test_a_frame_missing_mid_sequence_is_an_error_unless_frames_are_given(tmp_path):
    from focuspull.pipeline.run import run_job

    (tmp_path / "in").mkdir()
    src = _plate(tmp_path, [1, 2, 3, 5, 6])
    with pytest.raises(SequenceError, match="missing frame 4"):
        run_job(_job(src, str(tmp_path / "out" / "o.####.exr")))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # Asked for explicitly: the frames around the gap render.
    assert run_job(_job(src, str(tmp_path / "out" / "o.####.exr"), [1, 2, 3, 5, 6])).rendered == [1, 2, 3, 5, 6]
    # A sequence on twos has no gap.
    (tmp_path / "twos").mkdir()
    for f in (1, 3, 5):
        (tmp_path / "in" / f"shot.{f:04d}.exr").rename(tmp_path / "twos" / f"shot.{f:04d}.exr")
    assert run_job(_job(str(tmp_path / "twos" / "shot.####.exr"),
                        str(tmp_path / "o2" / "o.####.exr"))).rendered == [1, 3, 5]


def test_in_band_bad_depth_fails_before_rendering():
    from focuspull.pipeline.run import run_job
    from focuspull.spec.job import RenderJob

    frames = {f: {"rgba": np.full((8, 8, 4), 0.5, np.float32),
                  "depth": np.full((8, 8), -1.0 if f == 3 else 2.0, np.float32)} for f in (1, 2, 3)}
    events = []
    with pytest.raises(SequenceError, match="frame 3"):
        run_job(RenderJob.from_dict({"lens": {"mode": "physical", "fstop": 2.0},
                                     "focus": {"mode": "distance", "distance_m": 2.0}}),
                inband=frames, on_event=events.append)
    assert events == []


def test_the_depth_check_of_every_frame_can_be_cancelled():
    from focuspull.errors import Cancelled
    from focuspull.io.preflight import check_depth_values

    seen = []
    with pytest.raises(Cancelled):
        check_depth_values(lambda f: np.ones((2, 2), np.float32), range(1, 1001),
                           lambda f, d: seen.append(f), cancelled=lambda: len(seen) >= 3)
    assert seen == [1, 2, 3]
