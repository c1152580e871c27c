"""The install files, the knob table generated from the registry, knobs -> job (animation
curves, the focal point picker), preferences, and what the node process imports."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from focuspull.errors import JobSpecError
from focuspull.spec.fields import DEPTH_MATHS, FIELDS, Field, field_info
from focuspull.spec.job import RenderJob
from nuke_helpers import make_node

from conftest import HERE, REPO

PLUGIN = os.path.join(REPO, "nuke_plugin")


def _exec(path):
    with open(path) as fh:
        exec(compile(fh.read(), path, "exec"), {"__file__": path, "__name__": "__nuke_init__"})


def test_init_and_menu_register_the_node_under_filter_and_in_the_nodes_toolbar(fake_nuke, monkeypatch):
    site = os.path.join(REPO, "tests", "nuke_plugin")  # any existing folder stands for a pip --target
    monkeypatch.setenv("FOCUSPULL_SITE", site)
    monkeypatch.setattr(sys, "path", list(sys.path))
    _exec(os.path.join(PLUGIN, "init.py"))
    assert site in sys.path and os.path.join(REPO, "server") in sys.path
    _exec(os.path.join(PLUGIN, "menu.py"))
    entries = {(kind, menu, path): cmd for kind, menu, path, cmd in fake_nuke.MENUS}
    assert ("menu", "Nodes", "Filter/FocusPull") in entries
    assert ("toolbar", "Nodes", "FocusPull/FocusPull") in entries
    assert ("menu", "Nuke", "FocusPull/Preferences...") in entries
    exec(entries[("menu", "Nodes", "Filter/FocusPull")], {})  # what clicking it runs
    group = fake_nuke.toNode("FocusPull1")
    assert group is not None and group.Class() == "Group"
    assert ("createNode", ("Group", False)) in fake_nuke.CALLS
    inside = {c.name(): c.Class() for c in group.children}
    assert inside["fp_cache_write"] == "Write" and inside["fp_result"] == "Read"
    write = next(c for c in group.children if c.name() == "fp_cache_write")
    assert write["file_type"].value() == "exr" and write["datatype"].value() == "32 bit float"
    assert write["channels"].value() == "all"  # colour and depth (and the matte) go to the server


def test_every_registry_knob_is_on_the_node_with_its_class_range_choices_and_tooltip(fake_nuke):
    from focuspull_nuke import node as fp
    from focuspull_nuke.knobs import TABLE

    n = fp.create()
    for entry in FIELDS:
        if not entry.knob or entry.path in ("input.pattern", "output.pattern", "output.resume", "output.overwrite"):
            continue
        knob = n[entry.knob]
        assert entry.help[1:30] in knob.tooltip, entry.path
        if entry.kind == "float" and entry.knob != "focal_point":
            assert knob.Class() == "Double_Knob" and knob.range == (entry.minimum, entry.maximum), entry.path
        if entry.kind == "choice":
            assert knob.Class() == "Enumeration_Knob" and knob.values == list(entry.choices)
    assert n["focal_point"].Class() == "XY_Knob"
    assert n["math"].values == list(DEPTH_MATHS) and n["blades"].Class() == "Int_Knob"
    assert n["output"].values == ["result", "focal plane setup"]
    assert n["use_size"].Class() == "Boolean_Knob"  # optional numbers have a switch
    assert n["fstop"].value() == field_info("lens.fstop").default
    assert len({k.name for k in TABLE}) == len(TABLE)


def test_a_new_registry_field_gets_a_knob_without_node_code():
    from focuspull_nuke.knobs import build_table

    extra = Field("aperture.cat_eye", "float", 0.0, minimum=0.0, maximum=1.0, animatable=True,
                  label="Cat eye", help="optical vignetting of the bokeh", knob="catadioptric")
    table = build_table(FIELDS + (extra,))
    spec = next(k for k in table if k.name == "catadioptric")
    assert (spec.cls, spec.paths, spec.minimum, spec.maximum, spec.animatable) == (
        "double", ("aperture.cat_eye",), 0.0, 1.0, True)
    assert "Optical vignetting of the bokeh (0 .. 1)" in spec.tooltip


def test_knobs_become_the_job_with_animation_curves_as_exact_keyframes(fake_nuke):
    from focuspull_nuke import node as fp

    n = make_node(fake_nuke, [1, 2, 3], first=1001, last=1010)
    n["fstop"].animate([(1001, 1.4, fake_nuke.LINEAR), (1005.5, 4.0, fake_nuke.LINEAR), (1020, 8.0, fake_nuke.LINEAR)])
    n["center"].animate([(1001, 1.5, fake_nuke.CONSTANT), (1004, 6.0, fake_nuke.CONSTANT)])  # a step: baked
    n["blades"].setValue(7)
    n["math"].setValue("far=0")
    n["output"].setValue("focal plane setup")
    n["use_max_size"].setValue(True)
    n["max_size"].setValue(30.0)
    job, baked = fp.knob_job(n)
    assert job["frames"] == list(range(1001, 1011))
    assert job["lens"]["fstop"] == {"keys": {"1001": 1.4, "1005.5": 4.0, "1020": 8.0}, "interpolation": "linear"}
    assert baked == ["center"]
    distance = RenderJob.from_dict(job).focus.distance_m
    for f in range(1001, 1011):  # the job's value on every rendered frame is Nuke's
        assert distance.value_at(f) == (1.5 if f < 1004 else 6.0)
    assert job["aperture"]["blades"] == 7 and job["depth"]["depth_math"] == "far=0"
    assert job["output"]["setup_view"] is True and job["lens"]["max_size_px"] == 30.0
    assert job["lens"].get("size_px") is None  # switched off = not set


def test_the_focal_point_picker_is_flipped_to_top_left_pixel_centres(fake_nuke):
    from focuspull_nuke import node as fp

    n = make_node(fake_nuke, [1, 2, 3], h=24, w=32)
    n["focus_mode"].setValue("point")
    n["focal_point"].setValue([10.5, 20.5])  # Nuke: centre of column 10, row 20 from the bottom
    job, _ = fp.knob_job(n)
    assert (job["focus"]["point_x"], job["focus"]["point_y"]) == (10.0, 3.0)  # row 3 from the top
    n["focal_point"].animate([(1, 0.5, fake_nuke.LINEAR), (3, 23.5, fake_nuke.LINEAR)], index=1)
    job, baked = fp.knob_job(n)
    assert job["focus"]["point_y"] == {"keys": {"1": 23.0, "3": 0.0}, "interpolation": "linear"}
    assert baked == [] and job["focus"]["point_x"] == 10.0


def test_animating_a_knob_the_job_takes_once_is_an_error_naming_the_knob(fake_nuke):
    from focuspull_nuke import node as fp

    n = make_node(fake_nuke, [1, 2, 3])
    n["rotation"].animate([(1, 0.0, fake_nuke.LINEAR), (3, 30.0, fake_nuke.LINEAR)])
    with pytest.raises(JobSpecError) as info:
        fp.knob_job(n)
    assert info.value.field == "aperture.rotation_deg"
    assert "rotation knob is animated" in fp.error_text(info.value)


def test_preferences_panel_saves_and_the_environment_wins(fake_nuke, monkeypatch, tmp_path):
    from focuspull_nuke import node as fp, settings

    monkeypatch.delenv("FOCUSPULL_CACHE")
    fake_nuke.PANEL_ANSWER = {"endpoint": "tcp://10.0.0.5:5690", "token": "s3cret", "cache": str(tmp_path / "c"),
                              "transfer": "inband"}
    path = fp.on_preferences()
    assert json.load(open(path))["endpoint"] == "tcp://10.0.0.5:5690"
    s = settings.load()
    assert (s.endpoint, s.token, s.transfer, s.cache) == ("tcp://10.0.0.5:5690", "s3cret", "inband", str(tmp_path / "c"))
    monkeypatch.setenv("FOCUSPULL_ENDPOINT", "tcp://127.0.0.1:7000")
    assert settings.load().endpoint == "tcp://127.0.0.1:7000" and settings.overridden() == ["endpoint"]
    fake_nuke.PANEL_ANSWER = None  # Cancel in the panel: nothing saved
    assert fp.on_preferences() is None


def test_the_node_process_imports_only_the_client_and_the_spec():
    code = f"""
import sys
sys.path[:0] = [{os.path.join(HERE, 'fake')!r}, {PLUGIN!r}, {os.path.join(REPO, 'server')!r}]
import nuke
from focuspull_nuke import node as fp
n = fp.create()
fp.knob_job(n)
fp.server_status(fp.settings_mod.load(), timeout_s=0.2)
fp.render_batch.__code__  # the nuke -t path is the same module
import focuspull.commands.outcome  # what render_batch imports for the exit codes
heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'OpenImageIO', 'av', 'scipy')]
ours = sorted(m for m in sys.modules if m.startswith('focuspull.'))
print('HEAVY', heavy)
print('OURS', ours)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
    env["FOCUSPULL_ENDPOINT"] = "tcp://127.0.0.1:9"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    ours = eval(out.stdout.split("OURS ", 1)[1])
    allowed = ("focuspull.client", "focuspull.protocol", "focuspull.errors", "focuspull.spec",
               "focuspull.commands", "focuspull.commands.outcome")
    assert ours and all(m.startswith(allowed) and not m.startswith("focuspull.io") for m in ours), ours
