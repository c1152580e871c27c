"""The pure-Python parts of the scripts: in-band frames through the shared EXR codec, sequence
names as Resolve and Fusion spell them, and the settings window generated from the registry."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from focuspull import exr_lite as exr
from focuspull.errors import JobSpecError
from focuspull.io.images import write_image
from focuspull.spec import fields as registry
from focuspull.spec.job import RenderJob
from focuspull_resolve import jobs, settings
from focuspull_resolve.sequences import Sequence, find_rendered, from_resolve_path


# ----------------------------------------------------------------------------------- exr
def test_inband_frames_are_read_with_the_shared_codec_and_errors_name_the_saver_setting(tmp_path):
    rng = np.random.default_rng(1)
    pixels = (rng.random((37, 21, 5)) * 50 - 5).astype(np.float32)
    seq = Sequence(str(tmp_path / "a."), 4, ".exr")
    write_image(seq.path(1), pixels, ["R", "G", "B", "A", "depth.Z"], compression="zip", half=False)
    frames = jobs.read_inband(seq, [1], want_depth=True)
    np.testing.assert_array_equal(frames[1]["rgba"], pixels[..., :4])
    np.testing.assert_array_equal(frames[1]["depth"], pixels[..., 4])
    assert exr.find_depth_channel(exr.channel_names(seq.path(1))) == "depth.Z"
    write_image(seq.path(2), pixels[..., :3], compression="zip")
    with pytest.raises(exr.ExrError, match="no depth channel"):
        jobs.read_inband(seq, [2], want_depth=True)
    write_image(seq.path(3), np.ones((4, 4, 3), np.float32), compression="piz")
    with pytest.raises(exr.ExrError, match="piz compression.*set the Saver / render to ZIP or no compression"):
        jobs.read_inband(seq, [3], want_depth=False)
    (tmp_path / "a.0004.exr").write_bytes(b"not an exr at all")
    with pytest.raises(exr.ExrError, match="not an OpenEXR file.*set the Saver / render"):
        jobs.read_inband(seq, [4], want_depth=False)


# ----------------------------------------------------------------------------- sequences
def test_resolve_and_fusion_sequence_names(tmp_path):
    seq, first, last = from_resolve_path("/shows/a/plate.[1001-1100].exr")
    assert (seq.pattern, seq.printf, first, last) == ("/shows/a/plate.####.exr", "/shows/a/plate.%04d.exr", 1001, 1100)
    assert seq.fusion_clip() == "/shows/a/plate.0000.exr"
    assert from_resolve_path("/shows/a/interview.mov") is None
    assert from_resolve_path("/shows/[1-2]/clip.mov") is None
    for f in (86400, 86401, 86402):
        (tmp_path / f"shot_src_{f:08d}.exr").write_bytes(b"")
    (tmp_path / "shot_src_extra.exr").write_bytes(b"")
    (tmp_path / "other_00086400.exr").write_bytes(b"")
    seq, frames = find_rendered(str(tmp_path), "shot_src")
    assert frames == [86400, 86401, 86402] and seq.path(86401) == str(tmp_path / "shot_src_00086401.exr")
    assert Sequence(str(tmp_path / "shot_src_"), 8, ".exr").frames_on_disk() == frames
    assert find_rendered(str(tmp_path), "missing") is None


# ------------------------------------------------------------------------------ settings
def test_every_registry_field_but_the_scripts_own_has_a_row_in_its_own_words():
    rows = {r["id"]: r for r in settings.rows(settings.defaults(), {})}
    for f in registry.FIELDS:
        rid = settings.row_id(f.path)
        if f.path in settings.SCRIPT_OWNED:
            assert rid not in rows
            continue
        row = rows[rid]
        assert row["label"] == f.label and f.help in row["tooltip"]
        if f.kind == "choice":
            assert row["widget"] == "choice" and row["choices"] == f.choices and row["value"] == f.default
        if row["widget"] in ("int", "float"):
            assert (row["minimum"], row["maximum"]) == (f.minimum, f.maximum)
    assert rows["f_depth__stabilise_window"]["widget"] == "int" and rows["f_depth__stabilise_window"]["maximum"] == 64
    assert rows["f_aperture__blades"]["widget"] == "text"  # animatable since blades take keyframes
    assert rows["f_lens__fstop"]["widget"] == "text"  # animatable: takes keyframes


def test_a_field_added_to_the_registry_appears_in_the_window(monkeypatch):
    extra = registry.Field("refine.strength", "float", 0.5, minimum=0.0, maximum=1.0, label="Refine strength",
                           help="how much the refiner changes the render")
    monkeypatch.setattr(settings, "FIELDS", registry.FIELDS + (extra,))
    monkeypatch.setattr(settings, "field_info", lambda p: extra if p == extra.path else registry.field_info(p))
    row = {r["id"]: r for r in settings.rows(settings.defaults(), {})}["f_refine__strength"]
    assert (row["label"], row["widget"], row["minimum"], row["maximum"], row["value"]) == \
        ("Refine strength", "float", 0.0, 1.0, 0.5)
    assert settings.job_dict(settings.defaults())["refine"] == {"strength": 0.5, "precision": "auto"}


def test_defaults_make_a_valid_job_and_values_round_trip():
    values = settings.defaults()
    job = settings.job_dict(values)
    RenderJob.from_dict({**job, "input": {"pattern": "a.####.exr"}})
    values["lens.fstop"] = "1001:1.4,1010:8@smooth"
    values["aperture.blades"] = "7"
    answer = {settings.SERVER_ROW: values[settings.SERVER_ROW],
              **{settings.row_id(f.path): values[f.path] for f in settings.dialog_fields()}}
    assert settings.from_form(answer) == values
    assert settings.load(settings.dump(values)) == values
    job = settings.job_dict(values)
    assert job["lens"]["fstop"] == "1001:1.4,1010:8@smooth" and job["aperture"]["blades"] == 7
    RenderJob.from_dict({**job, "input": {"pattern": "a.####.exr"}})
    assert "size_px" not in job["lens"]  # empty text = not set


def test_remembered_values_that_no_longer_fit_are_dropped():
    values = settings.load('{"depth.stabilise_window": "six", "depth.kind": "telepathy", "lens.fstop": "2", "x": 1}')
    assert values["depth.stabilise_window"] == 0 and values["depth.kind"] == "channel" and values["lens.fstop"] == "2"
    assert "x" not in values
    assert settings.load("{not json") == settings.defaults()


def test_errors_are_said_in_the_windows_words():
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict({"lens": {"mode": "artistic"}})
    key, text = settings.place_error(info.value)
    assert key == "lens.size_px"
    assert "Size" in text and "lens.size_px" not in text and "lens.k" not in text  # hint names K too
    with pytest.raises(settings.FieldError) as bad:
        settings.job_dict({**settings.defaults(), "focus.track_from_frame": "soon"})
    assert bad.value.field == "focus.track_from_frame"
    assert settings.place_error(JobSpecError("x", field="frames[3]"))[0] == ""  # not in the window: top line


def test_work_folder_falls_back_to_temp_when_the_media_folder_is_read_only(tmp_path, monkeypatch):
    import tempfile

    from focuspull_resolve.common import make_workdir

    monkeypatch.delenv("FOCUSPULL_WORK", raising=False)
    media = tmp_path / "camera"
    media.mkdir()
    (media / "focuspull").write_text("a file where the folder would go")  # cannot become a folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    made = make_workdir(str(media / "A001.mov"), "A001 clip")
    assert made.startswith(str(tmp_path / "tmp" / "focuspull" / "A001_clip_")) and os.path.isdir(made)
    monkeypatch.setenv("FOCUSPULL_WORK", str(tmp_path / "w"))
    assert make_workdir(str(media / "A001.mov"), "x").startswith(str(tmp_path / "w" / "x_"))
