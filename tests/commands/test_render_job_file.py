"""focuspull render --job FILE: the job of --print-job / the Nuke node / the Resolve script / the
farm, with only paths, frames, resume/overwrite and device overridable."""
import json
import os

import numpy as np
import pytest

from focuspull.commands import cli
from focuspull.commands import render as render_cmd
from focuspull.io.images import read_image, write_image

H, W = 16, 24
LOOK = ["--focal-length", "50", "--fstop", "2", "--focus-distance", "1:1.5,3:6", "--blades", "5"]


def parse(*argv):
    return cli.build_parser("render", render_cmd).parse_args(list(argv))


@pytest.fixture
def shot(tmp_path):
    rng = np.random.default_rng(2)
    for f in (1, 2, 3):
        rgb = rng.random((H, W, 3)).astype(np.float32)
        z = np.full((H, W, 1), 4.0, np.float32)
        z[:, : W // 2] = 1.5
        write_image(str(tmp_path / f"p.{f:04d}.exr"), np.concatenate([rgb, z], 2), ["R", "G", "B", "Z"])
    return str(tmp_path / "p.####.exr")


@pytest.fixture
def job_file(shot, tmp_path, capsys):
    assert cli.main(["render", shot, str(tmp_path / "a" / "o.####.exr"), *LOOK, "--print-job"]) == 0
    path = tmp_path / "job.json"
    path.write_text(capsys.readouterr().out)
    return str(path)


def test_job_file_renders_like_the_options(shot, job_file, tmp_path):
    direct = str(tmp_path / "direct" / "o.####.exr")
    assert cli.main(["render", shot, direct, *LOOK, "--quiet"]) == 0
    assert cli.main(["render", "--job", job_file, "--quiet"]) == 0
    for f in (1, 2, 3):
        a = read_image(str(tmp_path / "a" / f"o.{f:04d}.exr")).pixels
        b = read_image(direct.replace("####", f"{f:04d}")).pixels
        assert np.array_equal(a, b)


def test_paths_frames_and_run_options_override_the_file(job_file, tmp_path):
    job = render_cmd.job_from_args(parse("--job", job_file, "/in/x.####.exr", "/out/y.####.exr",
                                         "--frames", "2-3", "--resume", "--preview", "/out/y.mp4",
                                         "--device", "cuda:1"))
    assert (job.input.pattern, job.output.pattern, job.output.preview) == ("/in/x.####.exr", "/out/y.####.exr",
                                                                           "/out/y.mp4")
    assert job.frames == (2, 3) and job.output.resume and job.device == "cuda:1"
    assert job.lens.fstop.value_at(1) == 2.0 and job.focus.distance_m.value_at(3) == 6.0  # the look stays


def test_the_command_line_choice_of_resume_or_overwrite_wins(job_file, tmp_path):
    data = json.load(open(job_file))
    data["output"]["overwrite"] = True
    path = tmp_path / "ow.json"
    path.write_text(json.dumps(data))
    job = render_cmd.job_from_args(parse("--job", str(path), "--resume"))
    assert job.output.resume and not job.output.overwrite


@pytest.mark.parametrize("extra, named", [(["--fstop", "4"], "--fstop"), (["--blades", "7"], "--blades"),
                                          (["--float"], "--float"), (["--focus-point", "3,4"], "--focus-point"),
                                          (["--setup-view"], "--setup-view")])
def test_options_that_change_the_look_are_refused(job_file, capsys, extra, named):
    assert cli.main(["render", "--job", job_file, *extra]) == 2
    err = capsys.readouterr().err
    assert f"{named} cannot be combined with --job" in err and "hint: edit the job file" in err


def test_depth_override_must_match_the_jobs_depth(job_file, capsys):
    assert cli.main(["render", "--job", job_file, "--depth", "/d/z.####.exr"]) == 2
    assert "reads its depth from 'channel'" in capsys.readouterr().err


@pytest.mark.parametrize("content, needle", [("{not json", "cannot read the job file"),
                                             ("[1, 2]", "holds a list, not a job map"),
                                             ('{"lens": {"fstop": -1}}', 'job field "lens.fstop" must be')])
def test_bad_job_files_say_what_to_fix(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert cli.main(["render", "--job", str(path), str(tmp_path / "i.####.exr"), str(tmp_path / "o.####.exr")]) == 2
    assert needle in capsys.readouterr().err


def test_missing_job_file_and_missing_sequences(tmp_path, capsys):
    assert cli.main(["render", "--job", str(tmp_path / "none.json")]) == 2
    assert "cannot read the job file" in capsys.readouterr().err
    assert cli.main(["render", "--fstop", "2"]) == 2
    assert "pass IN and OUT" in capsys.readouterr().err
    assert cli.main(["render", "--job", str(tmp_path / "none.json"), "only_in.####.exr"]) == 2
    assert "both IN and OUT or neither" in capsys.readouterr().err


def test_print_job_shows_the_merged_job(job_file, capsys):
    assert cli.main(["render", "--job", job_file, "--frames", "2", "--print-job"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames"] == [2] and printed["aperture"]["blades"] == 5
    assert os.path.basename(printed["output"]["pattern"]) == "o.####.exr"
