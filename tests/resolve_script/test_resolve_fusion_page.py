"""The Fusion page script through the adapter, with the stand-in in front and a real server,
real EXRs and the real renderer behind it."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fake_resolve as fake
from conftest import plate
from focuspull.io.images import read_image, write_image
from focuspull.io.metadata import FINGERPRINT_KEY
from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob
from focuspull_resolve import fusion_page, settings
from focuspull_resolve.host import FusionHost

pytestmark = pytest.mark.timeout(300)
FRAMES = list(range(1001, 1005))


def scene(selected=True):
    rec, user = fake.Recorder(), fake.User()
    fusion, bmd = fake.Fusion(rec), fake.Bmd(user, rec)
    comp = fake.Comp(rec, start=FRAMES[0], end=FRAMES[-1])
    src = comp.add("Loader", "Plate", (10.0, 2.0))
    src.frames = {f: plate(f) for f in FRAMES}
    merge = comp.add("Merge", "Merge1", (12.0, 2.0))
    merge.link("Background").source = src.Output
    comp.selected = [src] if selected else []
    return rec, user, comp, FusionHost(fusion, comp, bmd)


LOOK = {"lens.fstop": "1.4", "focus.distance_m": "2", "aperture.blades": 6, "lens.sensor_width_mm": "4"}


def reference(tmp_path, values: dict) -> dict[int, np.ndarray]:
    """`focuspull render` (run_job) on the frames the Saver wrote, with the window's settings."""
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in FRAMES:
        rgba, z = plate(f)
        write_image(str(ref / f"src.{f:04d}.exr"), np.dstack([rgba, z]), ["R", "G", "B", "A", "Z"],
                    compression="zip", half=False)
    job = settings.job_dict(values)
    job.update(input={"pattern": str(ref / "src.####.exr")}, frames=FRAMES,
               output={**job.get("output", {}), "pattern": str(ref / "out.####.exr")})
    run_job(RenderJob.from_dict(job))
    return {f: read_image(str(ref / f"out.{f:04d}.exr")).pixels for f in FRAMES}


def written_by_server(comp) -> bool:
    """The server's own EXR writer stamps the render's fingerprint; the script's in-band
    writer (results that came back over the socket) does not."""
    return FINGERPRINT_KEY in read_image(comp.tools["Loader1"].inputs["Clip"]).metadata


def check_result(comp, user, tmp_path):
    assert "Saver1" not in comp.tools  # the Saver was only the job's input
    loader = comp.tools["Loader1"]
    assert comp.tools["Merge1"].links["Background"].source.tool is loader  # wired after the tool
    assert loader.inputs["GlobalIn"] == FRAMES[0] and loader.inputs["GlobalOut"] == FRAMES[-1]
    first = loader.inputs["Clip"]
    assert first.endswith(f".{FRAMES[0]:04d}.exr")
    values = settings.load(comp.data[settings.DATA_KEY])
    expected = reference(tmp_path, values)
    for f in FRAMES:
        got = read_image(first.replace(f"{FRAMES[0]:04d}", f"{f:04d}"))
        np.testing.assert_array_equal(got.pixels[..., :4], expected[f][..., :4])
        # and the render did something: the highlight spread, the far side blurred
        assert np.abs(got.pixels[..., :3] - plate(f)[0][..., :3]).max() > 0.5
    assert comp.locks == 0 and comp.undo_depth == 0


def test_happy_path_by_path_matches_focuspull_render_and_remembers_the_settings(start_server, work, tmp_path):
    srv = start_server("--root", str(tmp_path))
    rec, user, comp, host = scene()
    user.settings = [{"server": srv.endpoint, **LOOK}]
    assert fusion_page.run(host) == "done", user.messages
    check_result(comp, user, tmp_path)
    assert written_by_server(comp)
    progress = [w for w in user.windows if w.ID == "fpProgress"]
    assert len(progress) == 1 and progress[0].Find("Status").Text == "finished"
    saver_inputs = [c[2] for c in rec.calls if c[0] == "Saver1" and c[1] == "SetInput"]
    assert ("OpenEXRFormat.ZEnable", 1) in saver_inputs and ("OpenEXRFormat.Depth", 2) in saver_inputs
    render = next(c for c in rec.calls if c[1] == "Render")
    assert render[2][0] == {"Start": FRAMES[0], "End": FRAMES[-1], "Tool": "Saver1", "Wait": True}

    # Run again: the window opens with what this comp remembered.
    user.settings = [None]
    assert fusion_page.run(host) == "closed"
    form = user.forms_seen[-1]
    assert form.Find("f_lens__fstop").Text == "1.4"
    assert form.Find("f_aperture__blades").Value == 6
    assert form.Find("server").Text == srv.endpoint


def test_frames_travel_in_band_when_the_server_cannot_see_the_folder(start_server, work, tmp_path):
    srv = start_server()  # no --root: it reads no files at all
    rec, user, comp, host = scene()
    user.settings = [{"server": srv.endpoint, **LOOK}]
    assert fusion_page.run(host) == "done", user.messages
    assert not written_by_server(comp)
    check_result(comp, user, tmp_path)


def test_cancel_leaves_the_comp_unchanged(start_server, work, tmp_path):
    srv = start_server("--root", str(tmp_path))
    rec, user, comp, host = scene()
    before = comp.state()
    user.settings = [{"server": srv.endpoint, **LOOK}]
    user.on_progress = lambda win, n: win.click("Cancel") if n == 1 else None
    assert fusion_page.run(host) == "cancelled"
    assert comp.state() == before
    assert "Cancelled" in user.messages[-1] and "unchanged" in user.messages[-1]
    assert os.listdir(work) == []  # the run's folder is gone
    assert [c for c in rec.calls if c[2][:1] == ("Saver",)]  # it did add (and remove) a Saver


def test_nothing_selected_says_what_to_do(work):
    rec, user, comp, host = scene(selected=False)
    before = comp.state()
    assert fusion_page.run(host) == "no tool"
    assert "No tool is selected" in user.messages[0] and "Scripts" in user.messages[0]
    assert comp.state() == before and not user.forms_seen


def test_server_not_running_says_how_to_start_it(work, dead_endpoint):
    rec, user, comp, host = scene()
    before = comp.state()
    user.settings = [{"server": dead_endpoint}]
    assert fusion_page.run(host) == "no server"
    assert "focuspull serve" in user.messages[-1] and dead_endpoint in user.messages[-1]
    assert comp.state() == before
    assert not [c for c in rec.calls if c[1] == "AddTool"]


def test_failed_saver_render_removes_the_saver(start_server, work, tmp_path):
    srv = start_server("--root", str(tmp_path))
    rec, user, comp, host = scene()
    comp.fail_render = True
    before = comp.state()
    user.settings = [{"server": srv.endpoint}]
    assert fusion_page.run(host) == "failed"
    assert "could not render Plate" in user.messages[-1] and "unchanged" in user.messages[-1]
    assert comp.state() == before and os.listdir(work) == []


def test_a_bad_value_is_shown_next_to_its_field(work, dead_endpoint):
    rec, user, comp, host = scene()
    before = comp.state()
    user.settings = [{"server": dead_endpoint, "aperture.blades": 2}, None]
    assert fusion_page.run(host) == "closed"
    second = user.forms_seen[1]
    said = second.Find("err_f_aperture__blades").Text
    assert "Blades" in said and "aperture.blades" not in said and "3 or more" in said
    assert second.Find("err_f_lens__fstop").Text == ""
    assert comp.state() == before


def test_the_servers_refusal_is_shown_next_to_the_field_it_names(start_server, work, tmp_path):
    # Focus by matte needs frames on disk; a server that cannot see the folder gets them
    # in-band and refuses the job, naming focus.mode.  The window says it beside "Focus".
    srv = start_server()
    rec, user, comp, host = scene()
    before = comp.state()
    user.settings = [{"server": srv.endpoint, "focus.mode": "matte", "focus.matte_channel": "A"}, None]
    assert fusion_page.run(host) == "closed"
    said = user.forms_seen[1].Find("err_f_focus__mode").Text
    assert "sequence on disk" in said and "with a point or a distance" in said  # message and hint
    assert all(not f.Text for f in user.forms_seen[1].layout.walk()
               if f.kind == "Label" and str(f.props.get("ID", "")).startswith("err_") and f is not
               user.forms_seen[1].Find("err_f_focus__mode"))
    assert comp.state() == before and os.listdir(work) == []
