"""`focuspull render` options for studio conventions: ZDefocus spellings, focus origin,
animated aperture, filter image, colour spaces; option-parsing errors in the project's form."""
from __future__ import annotations

import json

import pytest

from focuspull.commands import cli
from focuspull.spec.job import RenderJob


def _job(capsys, *options):
    assert cli.main(["render", "a.####.exr", "b.####.exr", *options, "--print-job"]) == 0
    return RenderJob.from_dict(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("spelling, name", [("far = 0", "far=0"), ("far = -0", "far=-0"), ("depth", "depth"),
                                            ("direct", "direct"), ("FAR=0", "far=0")])
def test_zdefocus_depth_math_spellings(capsys, spelling, name):
    assert _job(capsys, "--depth-math", spelling).depth.depth_math == name


def test_studio_options_reach_the_job(capsys):
    job = _job(capsys, "--focus-point", "960.5,200.5", "--focus-origin", "bottom-left",
               "--blades", "1001:5,1010:7", "--rotation", "1001:0,1010:90@smooth", "--roundness", "1001:0,1010:1",
               "--max-size", "1001:10,1010:20", "--aspect", "0.5", "--dof", "0.4", "--filter", "bokeh.png",
               "--input-transfer", "logc3", "--config", "ocio://cg-config-latest", "--working-space", "ACEScg",
               "--output-space", "ACEScct", "--display", "sRGB - Display", "--view", "Un-tone-mapped", "--channels", "diffuse,spec.R")
    assert job.focus.origin == "bottom-left" and job.focus.point_y.value_at(0) == 200.5
    assert job.aperture.blades.keys == ((1001.0, 5.0), (1010.0, 7.0))
    assert job.aperture.rotation_deg.interpolation == "smooth"
    assert job.aperture.roundness.value_at(1010) == 1.0 and job.lens.max_size_px.value_at(1010) == 20.0
    assert job.aperture.aspect.value_at(0) == 0.5 and job.focus.dof.value_at(0) == 0.4
    assert job.aperture.filter_image == "bokeh.png"
    assert job.input.transfer == "logc3" and job.colour.config == "ocio://cg-config-latest"
    assert (job.colour.working_space, job.colour.output_space) == ("ACEScg", "ACEScct")
    assert (job.colour.display, job.colour.view) == ("sRGB - Display", "Un-tone-mapped")
    assert job.output.channels == "diffuse,spec.R"


@pytest.mark.parametrize("argv, needle", [
    (["--stabilise", "two"], "argument --stabilise: invalid int value: 'two'"),
    (["--focus-origin", "centre"], "argument --focus-origin: invalid choice"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_option_parsing_errors_read_like_every_other_error(capsys, argv, needle):
    assert cli.main(["render", "a.####.exr", "b.####.exr", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuspull: error: ") and needle in err
    assert "\n  hint: see 'focuspull render --help'" in err
    assert "usage:" not in err  # not the whole usage text


@pytest.mark.parametrize("argv, needle, flag", [
    (["--blades", "1001:5,1010:6.5"], "whole number", "--blades"),
    (["--blades", "1001:2"], "3 or more", "--blades"),
    (["--aspect", "0"], "0.05 .. 20", "--aspect"),
    (["--dof", "-1"], "0 .. 1e+06", "--dof"),
])
def test_bad_animated_aperture_values_name_the_option(capsys, argv, needle, flag):
    assert cli.main(["render", "a.####.exr", "b.####.exr", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and flag in err
