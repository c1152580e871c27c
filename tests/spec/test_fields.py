"""The field registry is the one source of every job field's name, bounds and front-end words."""
from __future__ import annotations

import dataclasses

import pytest

from focuspull.errors import JobSpecError
from focuspull.spec.fields import FIELDS, describe, field_info, translate
from focuspull.spec.job import RenderJob


def _job_paths(cls=RenderJob, prefix=""):
    for f in dataclasses.fields(cls):
        if "path" not in f.metadata and f.name != "frames":  # a section
            yield from _job_paths(type(f.default_factory()), f"{prefix}{f.name}.")
        elif f.name != "frames":
            yield f"{prefix}{f.name}"


def test_every_job_field_has_exactly_one_registry_entry():
    assert sorted(_job_paths()) == sorted(f.path for f in FIELDS)


def test_defaults_of_the_job_are_the_registry_defaults():
    plain = RenderJob().to_dict()
    for entry in FIELDS:
        section, _, name = entry.path.rpartition(".")
        value = plain[section][name] if section else plain[name]
        if entry.path == "output.compression":
            continue  # normalised spelling
        assert value == entry.default, entry.path


def test_flags_and_knobs_are_unique():
    flags = [f.flag for f in FIELDS if f.flag]
    assert len(flags) == len(set(flags))
    knobs = [f.knob for f in FIELDS if f.knob and f.path not in ("focus.point_x", "focus.point_y")]
    assert len(knobs) == len(set(knobs))  # the focal point's x and y share one XY knob


def _with(path, value):
    section, _, name = path.rpartition(".")
    job = {"lens": {"mode": "artistic", "k": 4}} if path.startswith("lens.") and path != "lens.k" else {}
    if path in ("lens.k", "lens.size_px"):
        job = {"lens": {"mode": "artistic", path[5:]: value}}
    elif section:
        job.setdefault(section, {})[name] = value
    else:
        job[name] = value
    return job


@pytest.mark.parametrize("entry", [f for f in FIELDS if f.kind in ("int", "float") and f.minimum is not None],
                         ids=lambda f: f.path)
def test_every_numeric_bound_is_enforced_at_the_edge(entry):
    kind = int if entry.kind == "int" else float
    RenderJob.from_dict(_with(entry.path, kind(entry.maximum)))  # the bound itself is allowed
    for bad in (entry.minimum - 1, entry.maximum * 2 + 1):
        with pytest.raises(JobSpecError) as info:
            RenderJob.from_dict(_with(entry.path, kind(bad)))
        assert info.value.field == entry.path
        assert entry.range_text() in info.value.message


def test_long_strings_are_refused_without_echoing_them():
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict({"depth": {"kind": "model", "model": "tiny", "checkpoint_dir": "x" * 5000}})
    assert info.value.field == "depth.checkpoint_dir" and len(str(info.value)) < 300


def test_each_front_end_names_a_field_in_its_own_words():
    assert describe("lens.fstop", "cli") == "--fstop"
    assert describe("lens.fstop", "nuke") == "fstop knob"
    assert describe("lens.fstop", "dialog") == "f-stop"
    assert describe("frames[3]", "cli") == "frames[3]"
    assert translate("'aperture.blades' must be 0 .. 64", "aperture.blades", "cli") == "--blades must be 0 .. 64"
    assert field_info("focus.distance_m").knob == "center"  # ZDefocus's name
    with pytest.raises(KeyError):
        field_info("lens.aperture")
