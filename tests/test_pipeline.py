"""focuspull.pipeline.run_job end to end on tiny sequences (48 x 64) with real files."""
import os

import numpy as np
import pytest

from focuspull.errors import Cancelled, InputError, LensError, SequenceError
from focuspull.io.images import is_complete_frame, read_image, write_image
from focuspull.job import RenderJob
from focuspull.pipeline import run_job

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
    assert "frames 1-3" in info.value.message and "--resume" in info.value.hint and "--overwrite" in info.value.hint
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
    assert "--resume" in info.value.hint
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["o.0001.exr", "o.0002.exr"]  # no partial frame, no temp file
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
    from focuspull.depth import TinyDepthNet
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
