"""The Edit page script through the adapter: stand-in timeline / media pool / render queue in
front; real server, real EXRs (Resolve's render job writes them) and the real renderer behind."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fake_resolve as fake
from conftest import plate
from focuspull.io.images import read_image, write_image
from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob
from focuspull_resolve import edit_page, settings
from focuspull_resolve.host import ResolveHost

pytestmark = pytest.mark.timeout(300)
START, DURATION, LEFT = 100, 5, 3  # record frames 100..104 show source frames 3..7


@pytest.fixture
def model(tmp_path):
    import torch

    from focuspull.stages.depth.sources import TinyDepthNet

    torch.manual_seed(0)
    folder = tmp_path / "model"
    TinyDepthNet({"width": 4, "blocks": 1}).save_pretrained(str(folder))
    return str(folder)


def movie_scene(tmp_path):
    """A movie clip (no depth) on V1; the project renders MOV/H.264 until we touch it."""
    rec, user = fake.Recorder(), fake.User()
    fusion, bmd = fake.Fusion(rec), fake.Bmd(user, rec)
    timeline = fake.Timeline(rec, tracks=1)
    project = fake.Project(rec, "Show", timeline)
    media = fake.MediaPoolItem(str(tmp_path / "media" / "interview.mov"),
                               frames={i: plate(i)[0][..., :3] for i in range(20)})
    project.pool.clips.append(media)
    item = timeline.put(1, fake.TimelineItem(timeline, "interview.mov", START, DURATION, media, LEFT))
    timeline.playhead_item = item
    return rec, user, project, ResolveHost(fake.Resolve(rec, project, fusion), bmd)


def model_look(model: str, endpoint: str) -> dict:
    return {"server": endpoint, "depth.model": "tiny", "depth.checkpoint_dir": model, "lens.mode": "artistic",
            "lens.size_px": "4", "focus.mode": "disparity", "focus.disparity": "0.5"}


def reference_run(folder, frames, pictures, values, has_depth, channels):
    os.makedirs(folder)
    for f in frames:
        write_image(os.path.join(folder, f"src.{f:08d}.exr"), pictures[f], channels, compression="none",
                    half=False)
    job = edit_page.with_depth_source(settings.job_dict(values), has_depth)
    job.update(input={"pattern": os.path.join(folder, "src.########.exr")}, frames=frames,
               output={**job.get("output", {}), "pattern": os.path.join(folder, "out.########.exr")})
    run_job(RenderJob.from_dict(job))
    return {f: read_image(os.path.join(folder, f"out.{f:08d}.exr")).pixels for f in frames}


def placed_frames(project, track):
    item = project.timeline.tracks[track - 1][0]
    pattern, first, last = item.media.sequence
    return item, {f: read_image(pattern % f).pixels for f in range(first, last + 1)}


def test_movie_clip_is_rendered_by_resolve_then_depth_model_result_goes_on_the_track_above(
        start_server, work, tmp_path, model):
    srv = start_server("--root", str(tmp_path))
    rec, user, project, host = movie_scene(tmp_path)
    user.settings = [model_look(model, srv.endpoint)]
    assert edit_page.run(host) == "done", user.messages

    # Resolve rendered exactly the clip's record range, EXR float, and our job is gone again.
    render = next(c[2][0] for c in rec.calls if c[1] == "SetRenderSettings")
    assert (render["MarkIn"], render["MarkOut"]) == (START, START + DURATION - 1)
    assert ("project", "SetCurrentRenderFormatAndCodec", ("exr", "RGBFloat")) in rec.calls
    assert project.jobs == {} and project.format_codec == {"format": "mov", "codec": "H264"} and project.mode == 0
    # The result: a new V2 (there was none), same record frames.
    assert len(project.timeline.tracks) == 2
    item, result = placed_frames(project, 2)
    assert (item.start, item.duration) == (START, DURATION)
    assert len(project.pool.clips) == 2
    frames = list(range(START, START + DURATION))
    assert sorted(result) == frames
    pictures = {rf: plate(LEFT + rf - START)[0][..., :3] for rf in frames}
    values = settings.load(host.load_data(f"{settings.DATA_KEY}.Show"))
    expected = reference_run(str(tmp_path / "ref"), frames, pictures, values, False, ["R", "G", "B"])
    for f in frames:
        np.testing.assert_array_equal(result[f], expected[f])
        assert np.abs(result[f] - pictures[f]).max() > 0.5  # the highlight bloomed


def test_exr_sequence_with_z_is_used_as_it_is_with_its_own_depth(start_server, work, tmp_path):
    srv = start_server("--root", str(tmp_path))
    rec, user = fake.Recorder(), fake.User()
    fusion, bmd = fake.Fusion(rec), fake.Bmd(user, rec)
    shots = tmp_path / "shots"
    shots.mkdir()
    for f in range(1001, 1011):
        rgba, z = plate(f)
        write_image(str(shots / f"plate.{f:04d}.exr"), np.dstack([rgba, z]), ["R", "G", "B", "A", "Z"])
    timeline = fake.Timeline(rec, tracks=2)
    project = fake.Project(rec, "Show", timeline)
    media = fake.MediaPoolItem(str(shots / "plate.[1001-1010].exr"))
    item = timeline.put(1, fake.TimelineItem(timeline, "plate", START, DURATION, media, 2))
    timeline.put(2, fake.TimelineItem(timeline, "title", START + 2, 10, fake.MediaPoolItem("title.png")))
    timeline.playhead_item = item
    host = ResolveHost(fake.Resolve(rec, project, fusion), bmd)
    user.settings = [{"server": srv.endpoint, "lens.fstop": "1.4", "lens.sensor_width_mm": "4",
                      "focus.distance_m": "2"}]
    assert edit_page.run(host) == "done", user.messages
    assert not [c for c in rec.calls if c[1] in ("AddRenderJob", "SetRenderSettings")]  # no render needed
    assert "depth: clip's Z channel" in user.forms_seen[0].props["WindowTitle"]
    # V2 is taken over those frames by the title: a new V3 holds the result.
    assert len(timeline.tracks) == 3
    placed, result = placed_frames(project, 3)
    assert (placed.start, placed.duration) == (START, DURATION)
    frames = list(range(1003, 1003 + DURATION))
    assert sorted(result) == frames
    job = settings.job_dict(settings.load(host.load_data(f"{settings.DATA_KEY}.Show")))
    job.update(input={"pattern": str(shots / "plate.####.exr")}, frames=frames,
               output={"pattern": str(tmp_path / "ref" / "out.####.exr")})
    run_job(RenderJob.from_dict(job))
    for f in frames:
        np.testing.assert_array_equal(result[f], read_image(str(tmp_path / "ref" / f"out.{f:04d}.exr")).pixels)


def test_cancel_during_resolves_render_leaves_the_timeline_unchanged(work, tmp_path, start_server, model):
    srv = start_server("--root", str(tmp_path))
    rec, user, project, host = movie_scene(tmp_path)
    project.render_polls = 10_000  # it would render for ever
    before = project.state()
    user.settings = [model_look(model, srv.endpoint)]
    user.on_progress = lambda win, n: win.click("Cancel") if n == 2 else None
    assert edit_page.run(host) == "cancelled"
    assert ("project", "StopRendering", ()) in rec.calls
    assert project.state() == before and os.listdir(work) == []
    assert "Cancelled" in user.messages[-1]


def test_cancel_during_the_focuspull_job_leaves_the_timeline_unchanged(work, tmp_path, start_server, model):
    srv = start_server("--root", str(tmp_path))
    rec, user, project, host = movie_scene(tmp_path)
    before = project.state()
    user.settings = [model_look(model, srv.endpoint)]
    seen = []

    def on_progress(win, n):
        if win not in seen:
            seen.append(win)
        if len(seen) == 2 and n == 1:  # the second progress window is the focuspull job
            win.click("Cancel")
    user.on_progress = on_progress
    assert edit_page.run(host) == "cancelled"
    assert project.state() == before and os.listdir(work) == []


def test_failed_render_says_so_and_leaves_the_timeline_unchanged(work, tmp_path, start_server, model):
    srv = start_server("--root", str(tmp_path))
    rec, user, project, host = movie_scene(tmp_path)
    project.render_fails = True
    before = project.state()
    user.settings = [model_look(model, srv.endpoint)]
    assert edit_page.run(host) == "failed"
    assert "render of the clip failed (Failed; 2 of 5 frames" in user.messages[-1]
    assert project.state() == before and os.listdir(work) == []


def test_refused_placement_removes_the_imported_media_and_the_new_track(work, tmp_path, start_server, model):
    srv = start_server("--root", str(tmp_path))
    rec, user, project, host = movie_scene(tmp_path)
    project.pool.refuse_append = True
    before = project.state()
    user.settings = [model_look(model, srv.endpoint)]
    assert edit_page.run(host) == "failed"
    assert ("timeline", "AddTrack", ("video",)) in rec.calls and ("mediapool", "DeleteClips", (1,)) in rec.calls
    assert project.state() == before and os.listdir(work) == []
    assert "Unlock the track" in user.messages[-1]


def test_no_clip_under_the_playhead(work, tmp_path):
    rec, user, project, host = movie_scene(tmp_path)
    project.timeline.playhead_item = None
    before = project.state()
    assert edit_page.run(host) == "no clip"
    assert "no video clip under the playhead" in user.messages[0] and "Scripts > Edit" in user.messages[0]
    assert project.state() == before


def test_server_not_running(work, tmp_path, dead_endpoint, model):
    rec, user, project, host = movie_scene(tmp_path)
    before = project.state()
    user.settings = [model_look(model, dead_endpoint)]
    assert edit_page.run(host) == "no server"
    assert "focuspull serve" in user.messages[-1]
    assert project.state() == before and not [c for c in rec.calls if c[1] == "AddRenderJob"]


def test_a_clip_without_depth_needs_a_model_and_the_window_says_so_next_to_it(work, tmp_path, dead_endpoint):
    rec, user, project, host = movie_scene(tmp_path)
    user.settings = [{"server": dead_endpoint}, None]
    assert edit_page.run(host) == "closed"
    form = user.forms_seen[1]
    assert "not set" in form.Find("err_f_depth__model").Text
    assert "depth: depth model" in form.props["WindowTitle"]
