"""focuspull.pipeline.run.run_job end to end on tiny sequences (48 x 64) with real files."""
import os

import numpy as np
import pytest

from focuspull.errors import Cancelled, InputError, LensError, SequenceError
from focuspull.io.images import is_complete_frame, read_image, write_image
from focuspull.spec.job import RenderJob
from focuspull.pipeline.run import run_job

H, W = 48, 64


def make_sequence(directory, frames=range(1, 13), alpha=False, seed=0, name="shot"):
    """A textured plate with a near bar, a moving mid box and a far wall, with noisy depth
    (so stabilisation has something to do).  Returns the pattern."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    texture = rng.random((H, W, 3)).astype(np.float32) * 0.5
    for f in frames:
        rgb = np.roll(texture, f, axis=1).copy()
        rgb[6, 50] = 40.0  # an HDR highlight on the wall
        z = np.full((H, W), 8.0, np.float32)
        z[:, :14] = 1.5
        z[14:34, 24 + f:36 + f] = 3.0
        z *= 1.0 + 0.02 * rng.standard_normal((H, W)).astype(np.float32)  # flicker
        channels = [rgb]
        names = ["R", "G", "B"]
        if alpha:
            a = np.ones((H, W, 1), np.float32)
            a[:, -6:] = 0.5
            channels.append(a)
            rgb[:, -6:] *= 0.5  # premultiplied
            names.append("A")
        channels.append(z[:, :, None])
        names.append("Z")
        write_image(os.path.join(directory, f"{name}.{f:04d}.exr"), np.concatenate(channels, axis=2), names,
                    metadata={"framesPerSecond": [25, 1]})
    return os.path.join(directory, f"{name}.####.exr")


def job_for(pattern, out, **sections):
    spec = {"input": {"pattern": pattern}, "output": {"pattern": out},
            "lens": {"focal_length_mm": 50.0, "fstop": 1.4},
            "focus": {"distance_m": "1:1.5,12:8"}}
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return RenderJob.from_dict(spec)


def pixels(path):
    return read_image(path).pixels


def test_chunked_runs_equal_one_run_with_stabilisation(tmp_path):
    pattern = make_sequence(tmp_path / "in")
    whole = job_for(pattern, str(tmp_path / "whole" / "o.####.exr"), depth={"stabilise_window": 2})
    result = run_job(whole)
    assert result.rendered == list(range(1, 13))
    for chunk in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]):
        run_job(whole.replace(frames=tuple(chunk),
                              output=whole.output.__class__(pattern=str(tmp_path / "chunks" / "o.####.exr"))))
    for f in range(1, 13):
        a = pixels(tmp_path / "whole" / f"o.{f:04d}.exr")
        b = pixels(tmp_path / "chunks" / f"o.{f:04d}.exr")
        assert np.array_equal(a, b), f"frame {f} differs between one run and chunks"
        # (Compared as pixels: the EXR headers differ, they carry the write time.)
    # The stabiliser really took part: without it frame 6 renders differently.
    plain = run_job(whole.replace(frames=(6,), output=whole.output.__class__()), )
    assert not np.array_equal(plain.frames[6], pixels(tmp_path / "whole" / "o.0006.exr")[:, :, :3])


def test_chunked_runs_equal_one_run_with_tracked_smoothed_point_focus(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 9))
    job = job_for(pattern, None, focus={"mode": "point", "point_x": 30.0, "point_y": 24.0,
                                        "track_from_frame": 2, "smoothing_window": 1})
    whole = run_job(job).frames
    first = run_job(job.replace(frames=(1, 2, 3, 4))).frames
    second = run_job(job.replace(frames=(5, 6, 7, 8))).frames
    for f in range(1, 9):
        assert np.array_equal(whole[f], {**first, **second}[f]), f"frame {f}"
    # Tracking and smoothing really took part: the box under the point moves 1 px a frame,
    # so a fixed point slides off it onto the far wall (its depth changes from 3 m to 8 m),
    # and smoothing changes the focus where the tracked depth flickers.
    still = run_job(job_for(pattern, None, focus={"mode": "point", "point_x": 30.0, "point_y": 24.0})).frames
    assert not np.array_equal(whole[8], still[8])  # frame 8: the fixed point is on the wall
    tracked = run_job(job_for(pattern, None, focus={"mode": "point", "point_x": 30.0, "point_y": 24.0,
                                                    "track_from_frame": 2})).frames
    assert any(not np.array_equal(whole[f], tracked[f]) for f in range(1, 9))  # smoothing acted
    assert not np.array_equal(tracked[8], still[8])  # tracking acted: it followed the box


def _split_scene():
    """In-band frame: left half at 2 m, right half at 8 m, a textured image."""
    rng = np.random.default_rng(3)
    rgba = rng.random((H, W, 3)).astype(np.float32)
    depth = np.full((H, W), 8.0, np.float32)
    depth[:, : W // 2] = 2.0
    return rgba, depth


def test_in_focus_plane_is_untouched_and_the_rest_is_blurred():
    rgb, depth = _split_scene()
    job = RenderJob.from_dict({"lens": {"focal_length_mm": 50, "fstop": 1.4},
                               "focus": {"distance_m": 2.0}})
    out = run_job(job, inband={1: {"rgba": rgb, "depth": depth}}).frames[1]
    assert out.shape == rgb.shape and out.dtype == np.float32
    sharp = slice(2, W // 2 - 12)  # well inside the focused half, away from the blurred edge
    assert np.array_equal(out[:, sharp], rgb[:, sharp])
    far = slice(W // 2 + 8, W - 8)
    assert np.abs(out[:, far] - rgb[:, far]).mean() > 0.05
    assert out[:, far].std() < rgb[:, far].std() * 0.8  # blur lowers contrast


def test_keyframed_focus_moves_the_sharp_plane_per_frame():
    rgb, depth = _split_scene()
    job = RenderJob.from_dict({"lens": {"focal_length_mm": 50, "fstop": 1.4},
                               "focus": {"distance_m": "10:2,20:8"}})
    frames = run_job(job, inband={10: {"rgba": rgb, "depth": depth}, 20: {"rgba": rgb, "depth": depth}}).frames
    near, far = slice(2, W // 2 - 12), slice(W // 2 + 12, W - 2)
    assert np.array_equal(frames[10][:, near], rgb[:, near])
    assert not np.allclose(frames[10][:, far], rgb[:, far], atol=1e-3)
    assert np.array_equal(frames[20][:, far], rgb[:, far])
    assert not np.allclose(frames[20][:, near], rgb[:, near], atol=1e-3)


def test_events_alpha_metadata_and_depth_pass_through(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 4), alpha=True)
    events = []
    result = run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr")), on_event=events.append)
    assert [e["frame"] for e in events] == [1, 2, 3]
    assert [e["done"] for e in events] == [1, 2, 3] and {e["total"] for e in events} == {3}
    assert all(e["type"] == "frame" and e["fps"] > 0 and e["eta_s"] >= 0 for e in events)
    assert events[-1]["eta_s"] == 0
    assert [e["path"] for e in events] == result.written
    src = read_image(tmp_path / "in" / "shot.0002.exr")
    out = read_image(tmp_path / "out" / "o.0002.exr")
    assert out.channel_names == ["R", "G", "B", "A", "Z"]
    assert np.array_equal(out.channel("Z"), src.channel("Z"))  # 32-bit depth copied as is
    assert out.metadata.get("framesPerSecond") == src.metadata.get("framesPerSecond")
    # Alpha: the half-transparent strip on the far wall stays (blurred) half transparent.
    assert np.allclose(out.channel("A")[10:40, 30:50], 1.0, atol=1e-3)
    assert 0.4 < out.channel("A")[24, -2] < 0.8


def test_refuses_to_overwrite_existing_frames(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    job = job_for(pattern, str(tmp_path / "out" / "o.####.exr"), frames=[1, 2, 3])
    run_job(job)
    before = {p: os.path.getmtime(tmp_path / "out" / p) for p in os.listdir(tmp_path / "out")}
    with pytest.raises(InputError) as info:
        run_job(job.replace(frames=(1, 2, 3, 4)))
    assert "frames 1-3" in info.value.message and "'output.resume'" in info.value.hint
    assert "'output.overwrite'" in info.value.hint and info.value.field == "output.resume"
    assert {p: os.path.getmtime(tmp_path / "out" / p) for p in os.listdir(tmp_path / "out")} == before
    again = run_job(job.replace(output=job.output.__class__(pattern=job.output.pattern, overwrite=True)))
    assert again.rendered == [1, 2, 3] and again.skipped == []


def test_resume_skips_complete_frames_and_redoes_broken_ones(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    out = tmp_path / "out" / "o.####.exr"
    job = job_for(pattern, str(out))
    first = run_job(job.replace(frames=(1, 2, 3, 4)))
    reference = pixels(tmp_path / "out" / "o.0003.exr")
    broken = tmp_path / "out" / "o.0003.exr"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # a crashed copy
    assert not is_complete_frame(str(broken))
    resumed = run_job(job.replace(output=job.output.__class__(pattern=str(out), resume=True)))
    assert resumed.skipped == [1, 2, 4] and resumed.rendered == [3]
    assert first.rendered == [1, 2, 3, 4]
    assert np.array_equal(pixels(broken), reference)


def test_missing_input_frame_fails_before_anything_is_written(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 7))
    os.remove(tmp_path / "in" / "shot.0005.exr")
    with pytest.raises(SequenceError) as info:
        run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr"), frames=[1, 2, 3, 4, 5, 6]))
    assert "5" in info.value.message
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_impossible_lens_late_in_the_shot_fails_before_anything_is_written(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    job = job_for(pattern, str(tmp_path / "out" / "o.####.exr"), focus={"distance_m": "1:2,4:0.01"})
    with pytest.raises(LensError):
        run_job(job)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_output_may_not_overwrite_the_input(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    with pytest.raises(InputError, match="overwrite the input"):
        run_job(job_for(pattern, pattern, output={"overwrite": True}))


def test_cancel_between_frames_leaves_only_complete_frames(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 7))
    events = []
    with pytest.raises(Cancelled) as info:
        run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr")), on_event=events.append,
                cancelled=lambda: len(events) >= 2)
    assert "'output.resume'" in info.value.hint
    names = sorted(os.listdir(tmp_path / "out"))
    # A frame is reported once it is on disk, and frame 3 was being written (write-behind)
    # when the cancel was seen: it is finished and reported, nothing after it starts.
    assert [e["frame"] for e in events] == [1, 2, 3]
    assert names == ["o.0001.exr", "o.0002.exr", "o.0003.exr"]  # no partial frame, no temp file
    assert all(is_complete_frame(str(tmp_path / "out" / n)) for n in names)


def test_cancel_during_a_frame_abandons_it(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    polls = []

    def cancelled():  # false at the frame boundary, true inside the renderer's plane loop
        polls.append(1)
        return len(polls) > 1

    with pytest.raises(Cancelled):
        run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr")), cancelled=cancelled)
    assert os.listdir(tmp_path / "out") == []


def test_preview_movie_has_every_rendered_frame(tmp_path):
    av = pytest.importorskip("av")
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    movie = tmp_path / "out" / "preview.mp4"
    result = run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr"),
                             output={"preview": str(movie)}))
    assert result.preview == str(movie)
    with av.open(str(movie)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 4 and decoded[0].width >= W and decoded[0].height >= H


def test_setup_view_writes_the_focal_plane_view(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=[1])
    run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr"), focus={"distance_m": 1.5},
                    output={"setup_view": True}))
    view = read_image(tmp_path / "out" / "o.0001.exr")
    assert view.channel_names == ["R", "G", "B"]
    near = view.pixels[:, 2:10].reshape(-1, 3).mean(axis=0)   # the bar at 1.5 m: in focus
    far = view.pixels[:, 50:60].reshape(-1, 3).mean(axis=0)   # the wall at 8 m: behind
    assert near[1] > near[0] and near[1] > near[2]            # green
    assert far[2] > far[0] and far[2] > far[1]                  # blue: behind the focal plane


def test_model_depth_is_normalised_per_clip_so_chunks_match(tmp_path):
    from focuspull.stages.depth.sources import TinyDepthNet
    import torch

    torch.manual_seed(0)
    TinyDepthNet({"width": 4, "blocks": 1}).save_pretrained(str(tmp_path / "model"))
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    job = RenderJob.from_dict({"input": {"pattern": pattern},
                               "depth": {"kind": "model", "model": "tiny", "checkpoint_dir": str(tmp_path / "model")},
                               "lens": {"mode": "artistic", "k": 6.0},
                               "focus": {"mode": "disparity", "disparity": 0.5}})
    whole = run_job(job).frames
    chunks = {**run_job(job.replace(frames=(1, 2))).frames, **run_job(job.replace(frames=(3, 4))).frames}
    for f in range(1, 5):
        assert np.array_equal(whole[f], chunks[f])


def test_matte_focus_keeps_what_the_matte_covers_sharp(tmp_path):
    rgb, depth = _split_scene()
    matte = np.zeros((H, W, 1), np.float32)
    matte[10:30, W - 20:W - 5] = 1.0  # on the far (8 m) half
    os.makedirs(tmp_path / "in")
    write_image(str(tmp_path / "in" / "m.0001.exr"), np.concatenate([rgb, depth[:, :, None], matte], 2),
                ["R", "G", "B", "Z", "matte.A"])
    job = RenderJob.from_dict({"input": {"pattern": str(tmp_path / "in" / "m.####.exr")},
                               "lens": {"fstop": 1.4}, "focus": {"mode": "matte", "matte_channel": "matte.A"}})
    out = run_job(job).frames[1]
    src = read_image(str(tmp_path / "in" / "m.0001.exr")).pixels[:, :, :3]
    far, near = slice(W // 2 + 12, W - 2), slice(2, W // 2 - 12)
    assert np.array_equal(out[:, far], src[:, far])
    assert not np.allclose(out[:, near], src[:, near], atol=1e-3)
    with pytest.raises(SequenceError, match="matte.B"):
        run_job(job.replace(focus=job.focus.__class__(mode="matte", matte_channel="matte.B")))


def test_direct_coc_channel_is_used_as_is():
    rgb, _ = _split_scene()
    coc = np.zeros((H, W), np.float32)
    coc[:, W // 2:] = 6.0
    job = RenderJob.from_dict({"depth": {"depth_math": "direct"}, "focus": {"distance_m": 0.01}})
    out = run_job(job, inband={1: {"rgba": rgb, "depth": coc}}).frames[1]
    sharp, blurred = slice(2, W // 2 - 10), slice(W // 2 + 10, W - 2)
    assert np.array_equal(out[:, sharp], rgb[:, sharp])
    assert out[:, blurred].std() < 0.8 * rgb[:, blurred].std()


def test_invalid_depth_stops_unless_treated_as_far(tmp_path):
    rgb, depth = _split_scene()
    depth = depth.copy()
    depth[5, 7] = np.nan
    job = RenderJob.from_dict({"lens": {"fstop": 1.4}, "focus": {"distance_m": 8.0}})
    with pytest.raises(InputError, match="x=7, y=5"):
        run_job(job, inband={1: {"rgba": rgb, "depth": depth}})
    far = job.replace(depth=job.depth.__class__(bad_depth="far"))
    out = run_job(far, inband={1: {"rgba": rgb, "depth": depth}}).frames[1]
    assert np.isfinite(out).all()


@pytest.mark.parametrize("change", [
    {"aperture": {"blades": 2}},
    {"highlights": {"threshold": 1.5}},
    {"depth": {"kind": "model", "model": "tiny", "checkpoint_dir": "/nonexistent/model"},
     "lens": {"mode": "artistic", "size_px": 5.0}, "focus": {"mode": "disparity", "disparity": 0.5}},
])
def test_bad_settings_fail_before_the_output_is_touched(tmp_path, change):
    from focuspull.errors import FocuspullError

    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    spec = {"input": {"pattern": pattern}, "output": {"pattern": str(tmp_path / "out" / "o.####.exr")}, **change}
    with pytest.raises(FocuspullError) as info:
        run_job(RenderJob.from_dict(spec))
    assert info.value.hint
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- regressions
def _listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def _snapshot(directory):
    return {n: (directory / n).read_bytes() for n in _listing(directory)}


def _depth_sequence(directory, frames, value=3.0, name="depth"):
    os.makedirs(directory, exist_ok=True)
    for f in frames:
        write_image(str(directory / f"{name}.{f:04d}.exr"), np.full((H, W, 1), value, np.float32), ["Z"])
    return str(directory / f"{name}.####.exr")


def _plate(directory, frames, alpha_frames=None):
    """RGB(A) EXRs without depth; frames in ``alpha_frames`` (default all) get an A channel."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(5)
    for f in frames:
        rgb = rng.random((H, W, 3)).astype(np.float32)
        if alpha_frames is None or f in alpha_frames:
            write_image(str(directory / f"shot.{f:04d}.exr"), np.concatenate([rgb, np.ones((H, W, 1), np.float32)], 2))
        else:
            write_image(str(directory / f"shot.{f:04d}.exr"), rgb)
    return str(directory / "shot.####.exr")


def test_output_may_not_overwrite_the_depth_sequence_even_with_overwrite(tmp_path):
    plate = _plate(tmp_path / "in", range(1, 4))
    depth = _depth_sequence(tmp_path / "in", range(1, 4))
    before = _snapshot(tmp_path / "in")
    for output in ({"overwrite": True}, {}):
        job = job_for(plate, depth, depth={"kind": "sequence", "pattern": depth}, output=output)
        with pytest.raises(InputError) as info:
            run_job(job)
        assert "overwrite the input" in info.value.message and "depth" in info.value.message
        assert "--overwrite" not in info.value.hint and "--resume" not in info.value.hint
    assert _snapshot(tmp_path / "in") == before


def test_output_may_not_overwrite_the_input_through_a_symlink(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    os.symlink(tmp_path / "in", tmp_path / "link")
    before = _snapshot(tmp_path / "in")
    job = job_for(pattern, str(tmp_path / "link" / "shot.####.exr"), output={"overwrite": True})
    with pytest.raises(InputError, match="overwrite the input"):
        run_job(job)
    # Nor may the preview replace an input frame.
    job = job_for(pattern, str(tmp_path / "out" / "o.####.exr"),
                  output={"preview": str(tmp_path / "link" / "shot.0002.exr"), "overwrite": True})
    with pytest.raises(InputError, match="overwrite the input"):
        run_job(job)
    assert _snapshot(tmp_path / "in") == before


def test_display_referred_png_round_trips_in_its_own_transfer(tmp_path):
    from focuspull.io.transfer import to_linear

    os.makedirs(tmp_path / "in")
    codes = np.random.default_rng(9).integers(0, 256, (H, W, 3)).astype(np.float32) / 255.0
    for f in (1, 2):
        write_image(str(tmp_path / "in" / f"plate.{f:04d}.png"), to_linear(codes, "rec709"), transfer="rec709")
    depth = _depth_sequence(tmp_path / "in", (1, 2), value=3.0)
    job = RenderJob.from_dict({"input": {"pattern": str(tmp_path / "in" / "plate.####.png"), "transfer": "rec709"},
                               "depth": {"kind": "sequence", "pattern": depth},
                               "lens": {"fstop": 2.8}, "focus": {"distance_m": 3.0},  # all in focus
                               "output": {"pattern": str(tmp_path / "out" / "o.####.png")}})
    run_job(job)
    stored_in = read_image(str(tmp_path / "in" / "plate.0002.png"), transfer="linear").pixels
    stored_out = read_image(str(tmp_path / "out" / "o.0002.png"), transfer="linear").pixels
    assert np.abs(stored_in * 255 - codes * 255).max() < 0.5  # the plate holds the codes
    assert np.abs(stored_out * 255 - stored_in * 255).max() <= 1.0
    # EXR output of the same plate stays scene-linear.
    run_job(job.replace(output=job.output.__class__(pattern=str(tmp_path / "exr" / "o.####.exr"), half=False)))
    linear = read_image(str(tmp_path / "exr" / "o.0002.exr")).pixels[:, :, :3]
    assert np.allclose(linear, to_linear(codes, "rec709"), atol=2e-3)


def test_single_depth_still_serves_every_frame_of_a_sequence(tmp_path):
    plate = _plate(tmp_path / "in", range(1001, 1004))
    still = tmp_path / "in" / "depth.exr"
    z = np.full((H, W, 1), 8.0, np.float32)
    z[:, : W // 2] = 2.0
    write_image(str(still), z, ["Z"])
    job = RenderJob.from_dict({"input": {"pattern": plate}, "depth": {"kind": "sequence", "pattern": str(still),
                                                                      "stabilise_window": 1},
                               "lens": {"fstop": 1.4}, "focus": {"distance_m": 2.0}})
    whole = run_job(job)
    assert sorted(whole.frames) == [1001, 1002, 1003]
    chunk = run_job(job.replace(frames=(1002,))).frames
    assert np.array_equal(chunk[1002], whole.frames[1002])
    # And the other way round: one still plate over every frame of a depth sequence.
    depth = _depth_sequence(tmp_path / "in", range(1001, 1004), value=2.0)
    still_plate = RenderJob.from_dict({"input": {"pattern": str(tmp_path / "in" / "shot.1001.exr")},
                                       "depth": {"kind": "sequence", "pattern": depth},
                                       "lens": {"fstop": 1.4}, "focus": {"distance_m": 2.0}})
    assert sorted(run_job(still_plate).frames) == [1001, 1002, 1003]


def _movie_frames(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_resume_keeps_the_preview_whole_and_an_existing_preview_is_not_replaced(tmp_path):
    pytest.importorskip("av")
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    movie = tmp_path / "out" / "preview.mp4"
    out = str(tmp_path / "out" / "o.####.exr")
    full = run_job(job_for(pattern, str(tmp_path / "ref" / "o.####.exr"),
                           output={"preview": str(tmp_path / "ref" / "p.mp4")}))
    reference = _movie_frames(full.preview)
    run_job(job_for(pattern, out, frames=[1, 2], output={"preview": str(movie)}))
    assert len(_movie_frames(movie)) == 2
    before = movie.read_bytes()
    with pytest.raises(InputError) as info:  # same rule as frames: never replaced silently
        run_job(job_for(pattern, out, frames=[3, 4], output={"preview": str(movie)}))
    assert "preview" in info.value.message and "'output.overwrite'" in info.value.hint
    assert movie.read_bytes() == before and _listing(tmp_path / "out") == ["o.0001.exr", "o.0002.exr", "preview.mp4"]
    resumed = run_job(job_for(pattern, out, output={"preview": str(movie), "resume": True}))
    assert resumed.skipped == [1, 2] and resumed.rendered == [3, 4] and resumed.preview == str(movie)
    frames = _movie_frames(movie)
    assert len(frames) == 4  # the whole range, in order, not only the frames of this run
    distance = np.array([[np.abs(got.astype(int) - want.astype(int)).mean() for want in reference]
                         for got in frames])
    assert list(distance.argmin(axis=1)) == [0, 1, 2, 3], distance  # frame i looks like frame i
    # Everything already complete: the preview is still rebuilt over the whole range.
    again = run_job(job_for(pattern, out, output={"preview": str(movie), "resume": True}))
    assert again.rendered == [] and len(_movie_frames(movie)) == 4


def test_frames_with_other_alpha_fail_preflight_listing_them(tmp_path):
    plate = _plate(tmp_path / "in", range(1, 6), alpha_frames={1, 2, 4})
    depth = _depth_sequence(tmp_path / "in", range(1, 6))
    job = job_for(plate, str(tmp_path / "out" / "o.####.exr"), depth={"kind": "sequence", "pattern": depth})
    with pytest.raises(SequenceError) as info:
        run_job(job)
    assert "shot.0003.exr" in info.value.message and "shot.0005.exr" in info.value.message
    assert "colour/alpha" in info.value.message and "shot.0004.exr" not in info.value.message
    assert info.value.hint
    assert _listing(tmp_path / "out") == []


def test_frames_read_by_the_stabiliser_are_preflighted(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 7))
    write_image(str(tmp_path / "in" / "shot.0005.exr"), np.ones((H, W + 2, 4), np.float32), ["R", "G", "B", "Z"])
    job = job_for(pattern, str(tmp_path / "out" / "o.####.exr"), frames=[3], depth={"stabilise_window": 2})
    with pytest.raises(SequenceError) as info:
        run_job(job)
    assert "shot.0005.exr" in info.value.message
    assert _listing(tmp_path / "out") == []
    run_job(job.replace(depth=job.depth.__class__()))  # without stabilisation frame 5 is not read


def test_depth_errors_in_the_stabilisation_window_name_the_frame_number(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1001, 1007))
    z = read_image(str(tmp_path / "in" / "shot.1005.exr"))
    pixels = z.pixels.copy()
    pixels[4, 9, z.channel_names.index("Z")] = np.nan
    write_image(str(tmp_path / "in" / "shot.1005.exr"), pixels, z.channel_names, half=False)
    job = job_for(pattern, None, frames=[1003], depth={"stabilise_window": 2},
                  focus={"distance_m": 3.0})
    with pytest.raises(InputError) as info:
        run_job(job)
    assert "frame 1005" in info.value.message and "x=9, y=4" in info.value.message
    assert "frame 4" not in info.value.message.replace("frame 1005", "")


def test_resume_removes_temps_of_dead_writers_only(tmp_path):
    from focuspull.io.atomic import host_token

    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    out = tmp_path / "out"
    job = job_for(pattern, str(out / "o.####.exr"), frames=[1])
    run_job(job)
    dead = subprocess_pid_that_exited()
    stale = out / f".o.0002.exr.{host_token()}-{dead}-abcd1234.tmp.exr"
    elsewhere = out / f".o.0002.exr.otherhost-{os.getpid()}-abcd1234.tmp.exr"  # a live writer on another host
    for path in (stale, elsewhere):
        path.write_bytes(b"half a frame")
    result = run_job(job.replace(frames=(1, 2), output=job.output.__class__(pattern=job.output.pattern, resume=True)))
    assert result.rendered == [2]
    assert not stale.exists() and elsewhere.exists()


def subprocess_pid_that_exited():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("device, hint", [("nonsense", "cpu, cuda or cuda:N"), ("cuda", "'device' to cpu")])
def test_unusable_device_is_an_input_error(device, hint):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rgb, depth = _split_scene()
    job = RenderJob.from_dict({"lens": {"fstop": 1.4}, "focus": {"distance_m": 2.0}, "device": device})
    with pytest.raises(InputError) as info:
        run_job(job, inband={1: {"rgba": rgb, "depth": depth}})
    assert hint in info.value.hint and device in info.value.message


def test_resume_redoes_frames_of_another_render(tmp_path):
    from focuspull.io.metadata import FINGERPRINT_KEY

    pattern = make_sequence(tmp_path / "in", frames=range(1, 4))
    out = str(tmp_path / "out" / "o.####.exr")
    job = job_for(pattern, out, focus={"distance_m": 1.5})
    run_job(job.replace(output=job.output.__class__(pattern=out, setup_view=True, keep_depth=False)))
    # The setup view has other channels; a render with another focus has the same ones.
    other_focus = job_for(pattern, out, focus={"distance_m": 8.0}, frames=[1, 2], output={"overwrite": True})
    run_job(other_focus)
    run_job(job.replace(frames=(3,), output=job.output.__class__(pattern=out, overwrite=True)))
    resumed = run_job(job.replace(output=job.output.__class__(pattern=out, resume=True)))
    assert resumed.skipped == [3] and resumed.rendered == [1, 2]
    written = read_image(tmp_path / "out" / "o.0001.exr").metadata
    assert written[FINGERPRINT_KEY] == job.fingerprint() != other_focus.fingerprint()


def test_frames_read_covers_every_temporal_stage():
    from focuspull.pipeline.plan import frames_read

    clip = [1, 2, 3, 5, 6, 7, 8, 9, 10]  # frame 4 is not in the clip: windows count clip frames
    base = {"input": {"pattern": "a.####.exr"}}
    assert frames_read(RenderJob.from_dict(base), clip, [6]) == [6]
    stab = RenderJob.from_dict({**base, "depth": {"stabilise_window": 2}})
    assert frames_read(stab, clip, [6]) == [3, 5, 6, 7, 8]
    smooth = RenderJob.from_dict({**base, "depth": {"stabilise_window": 1},
                                  "focus": {"mode": "point", "point_x": 1, "point_y": 1, "smoothing_window": 1}})
    assert frames_read(smooth, clip, [6]) == [3, 5, 6, 7, 8]
    tracked = RenderJob.from_dict({**base, "focus": {"mode": "point", "point_x": 1, "point_y": 1,
                                                     "track_from_frame": 10}})
    assert frames_read(tracked, clip, [2]) == clip[1:]
    model = RenderJob.from_dict({**base, "depth": {"kind": "model", "model": "tiny"},
                                 "lens": {"mode": "artistic", "k": 3},
                                 "focus": {"mode": "disparity", "disparity": 0.5}})
    assert frames_read(model, clip, [6]) == clip


def test_unwritable_output_directory_fails_before_rendering(tmp_path, monkeypatch):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    locked = str(tmp_path / "locked")
    os.makedirs(locked)
    real_access = os.access
    # Root ignores permission bits, so stand in for a read-only mount.
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == locked
                        else real_access(p, mode, **kw))
    events = []
    with pytest.raises(InputError) as info:
        run_job(job_for(pattern, os.path.join(locked, "o.####.exr")), on_event=events.append)
    assert info.value.hint == "check that the output directory exists, is writable and has free space"
    assert events == [] and os.listdir(locked) == []
