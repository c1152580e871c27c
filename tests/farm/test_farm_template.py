"""focuspull farm template: the OpenJD template, its parameter values, the Deadline Cloud bundle
files, the frame range spelling, the YAML writer, and the command's refusals."""
import json
import os
import random
import subprocess
import sys

import pytest
import yaml

from focuspull.commands import cli
from focuspull.farm.openjd import (CHUNK_PARAMETER, PREVIEW_STEP, RENDER_STEP, chunks, default_preview_path,
                                   range_expression)
from focuspull.farm.yaml_text import dump_yaml
from focuspull.io.frames import parse_frame_range

LOOK = ["--focal-length", "35", "--fstop", "2", "--focus-distance", "1:1.2,5:5@smooth", "--stabilise", "1",
        "--blades", "6"]


def make_template(clip, tmp_path, *extra, where="--out-dir", folder="t"):
    out = str(tmp_path / "out" / "p_dof.####.exr")
    target = str(tmp_path / folder)
    assert cli.main(["farm", "template", clip, out, *LOOK, "--chunk-size", "2", where, target, *extra]) == 0
    return target


def load(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


# --------------------------------------------------------------------------- frame ranges
@pytest.mark.parametrize("frames, text", [
    (range(1001, 1049), "1001-1048"), ([1, 3, 5, 7], "1-7:2"), ([1, 2, 3, 7, 9, 11], "1-3,7-11:2"),
    ([1, 5], "1,5"), ([4], "4"), ([-3, -2, -1, 0], "-3-0"), ([1, 2, 10, 11], "1-2,10-11")])
def test_range_expression_spells_frames_the_openjd_way(frames, text):
    assert range_expression(frames) == text


def test_range_expression_round_trips_through_openjd_and_focuspull():
    from openjd.model import IntRangeExpr

    rng = random.Random(3)
    for _ in range(200):
        frames = sorted(rng.sample(range(-20, 120), rng.randint(1, 40)))
        text = range_expression(frames)
        assert list(IntRangeExpr.from_str(text)) == frames, text
        assert parse_frame_range(text) == frames, text


def test_chunks_split_frames_without_sharing_one():
    parts = chunks([5, 1, 2, 3, 4], 2)
    assert parts == [[1, 2], [3, 4], [5]]


def test_default_preview_sits_beside_the_frames():
    assert default_preview_path("/o/shot_dof.####.exr") == os.path.join("/o", "shot_dof.mp4")
    assert default_preview_path("/o/shot_dof_%04d.exr") == os.path.join("/o", "shot_dof.mp4")


# --------------------------------------------------------------------------- YAML writer
def test_yaml_writer_keeps_every_value_and_type():
    data = {"name": "Render", "yes": "no", "on": 1, "1001": "1001", "n": None, "f": 2.5, "t": True,
            "odd": ["#not a comment", "a: b", "- dash", "{{Param.X}}", "é ü 日本", "' \" \\ \t", ""],
            "nested": [{"a": [], "b": {}}, [1, [2, 3]], {"c": [{"d": "e"}]}]}
    assert yaml.safe_load(dump_yaml(data)) == data


def test_yaml_writer_refuses_what_it_cannot_spell():
    with pytest.raises(ValueError):
        dump_yaml({"x": float("nan")})
    with pytest.raises(TypeError):
        dump_yaml({"x": object()})


# --------------------------------------------------------------------------- the template
def test_template_chunks_the_frames_and_renders_the_job_file(clip, tmp_path, openjd):
    target = make_template(clip, tmp_path)
    template = load(os.path.join(target, "template.yaml"))
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert template["extensions"] == ["TASK_CHUNKING"]
    params = {p["name"]: p for p in template["parameterDefinitions"]}
    assert params["Frames"]["default"] == "1-5" and params["ChunkSize"]["default"] == 2
    assert (params["InputDir"]["dataFlow"], params["OutputDir"]["dataFlow"]) == ("IN", "OUT")
    render, preview = template["steps"]
    assert (render["name"], preview["name"]) == (RENDER_STEP, PREVIEW_STEP)
    (chunk,) = render["parameterSpace"]["taskParameterDefinitions"]
    assert chunk == {"name": CHUNK_PARAMETER, "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
                     "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "NONCONTIGUOUS"}}
    args = render["script"]["actions"]["onRun"]["args"]
    assert args[:5] == ["render", "{{Param.InputDir}}/p.####.exr", "{{Param.OutputDir}}/p_dof.####.exr",
                        "--job", "{{Param.JobFile}}"]
    assert args[args.index("--frames") + 1] == "{{Task.Param.Frame}}" and "--resume" in args
    assert "--overwrite" not in args and "--preview" not in args  # tasks never race for the movie
    assert preview["dependencies"] == [{"dependsOn": RENDER_STEP}]
    preview_args = preview["script"]["actions"]["onRun"]["args"]
    assert preview_args[preview_args.index("--frames") + 1] == "{{Param.Frames}}"
    assert preview_args[preview_args.index("--preview") + 1] == "{{Param.Preview}}"
    assert not any(str(tmp_path) in a for a in args + preview_args), "paths travel as PATH parameters"

    result = openjd("check", os.path.join(target, "template.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passes validation" in result.stdout


def test_openjd_check_refuses_a_broken_template(clip, tmp_path, openjd):
    """The check above can fail: the same template without its extension is refused."""
    target = make_template(clip, tmp_path)
    template = load(os.path.join(target, "template.yaml"))
    del template["extensions"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(dump_yaml(template))
    result = openjd("check", broken)
    assert result.returncode != 0 and "TASK_CHUNKING" in result.stdout + result.stderr


def test_listed_chunks_need_no_extension(clip, tmp_path, openjd):
    target = make_template(clip, tmp_path, "--listed-chunks", "--frames", "1-5,9-13:2")
    template = load(os.path.join(target, "template.yaml"))
    assert "extensions" not in template
    (chunk,) = template["steps"][0]["parameterSpace"]["taskParameterDefinitions"]
    assert chunk == {"name": CHUNK_PARAMETER, "type": "STRING", "range": ["1-2", "3-4", "5,9", "11,13"]}
    assert [parse_frame_range(text) for text in chunk["range"]] == chunks([1, 2, 3, 4, 5, 9, 11, 13], 2)
    preview_args = template["steps"][1]["script"]["actions"]["onRun"]["args"]
    assert preview_args[preview_args.index("--frames") + 1] == "1-5,9-13:2"
    names = {p["name"] for p in template["parameterDefinitions"]}
    assert not names & {"Frames", "ChunkSize"}  # fixed here: changing them at submission would do nothing
    assert set(load(os.path.join(target, "parameters.yaml"))) <= names
    result = openjd("check", os.path.join(target, "template.yaml"), "--extensions", "")
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_file_holds_the_look_and_always_resumes(clip, tmp_path):
    target = make_template(clip, tmp_path, "--preview", str(tmp_path / "movie" / "shot.mp4"))
    job = json.load(open(os.path.join(target, "job.json")))
    assert job["lens"]["fstop"] == 2.0 and job["aperture"]["blades"] == 6
    assert job["focus"]["distance_m"] == {"keys": {"1": 1.2, "5": 5.0}, "interpolation": "smooth"}
    assert job["depth"]["stabilise_window"] == 1
    assert job["frames"] == [1, 2, 3, 4, 5]  # all on disk: none was named
    assert job["output"]["resume"] is True and job["output"]["overwrite"] is False
    assert job["output"]["preview"] is None  # the preview step writes it
    assert os.path.isabs(job["input"]["pattern"]) and os.path.isabs(job["output"]["pattern"])
    values = load(os.path.join(target, "parameters.yaml"))
    assert values == {"JobFile": os.path.join(target, "job.json"), "InputDir": os.path.dirname(clip),
                      "OutputDir": str(tmp_path / "out"), "Preview": str(tmp_path / "movie" / "shot.mp4"),
                      "Frames": "1-5", "ChunkSize": 2, "Device": "cpu"}


def test_frames_option_and_job_file_source(clip, tmp_path, capsys):
    out = str(tmp_path / "o" / "x.####.exr")
    job_path = tmp_path / "job.json"
    assert cli.main(["render", clip, out, *LOOK, "--print-job"]) == 0
    job_path.write_text(capsys.readouterr().out)
    target = str(tmp_path / "fromjob")
    assert cli.main(["farm", "template", "--job", str(job_path), "--frames", "2-4", "--out-dir", target]) == 0
    job = json.load(open(os.path.join(target, "job.json")))
    assert job["frames"] == [2, 3, 4] and job["lens"]["focal_length_mm"] == 35.0
    assert load(os.path.join(target, "parameters.yaml"))["Frames"] == "2-4"


def test_bundle_is_what_deadline_bundle_submit_reads(clip, tmp_path, openjd):
    plain = make_template(clip, tmp_path, folder="plain")
    bundle = make_template(clip, tmp_path, where="--bundle", folder="bundle")
    assert sorted(os.listdir(bundle)) == ["asset_references.yaml", "job.json", "parameter_values.yaml",
                                          "template.yaml"]
    assert open(os.path.join(plain, "template.yaml")).read() == open(os.path.join(bundle, "template.yaml")).read()
    template = load(os.path.join(bundle, "template.yaml"))
    defined = {p["name"]: p for p in template["parameterDefinitions"]}
    values = load(os.path.join(bundle, "parameter_values.yaml"))["parameterValues"]
    assert all(set(v) == {"name", "value"} and v["name"] in defined for v in values)
    # JobFile keeps its relative default: Deadline resolves it inside the bundle folder.
    assert "JobFile" not in {v["name"] for v in values}
    assert defined["JobFile"]["default"] == "job.json" and os.path.isfile(os.path.join(bundle, "job.json"))
    refs = load(os.path.join(bundle, "asset_references.yaml"))["assetReferences"]
    assert refs["inputs"] == {"directories": [os.path.dirname(clip)], "filenames": []}
    assert refs["outputs"] == {"directories": [str(tmp_path / "out")]}
    assert refs["referencedPaths"] == []
    result = openjd("check", os.path.join(bundle, "template.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_depth_sequence_and_model_folders_are_path_parameters(clip, tmp_path):
    depth = str(tmp_path / "in" / "p.####.exr")  # the Z of the clip, read as a separate sequence
    target = make_template(clip, tmp_path, "--depth", depth)
    template = load(os.path.join(target, "template.yaml"))
    args = template["steps"][0]["script"]["actions"]["onRun"]["args"]
    assert args[args.index("--depth") + 1] == "{{Param.DepthDir}}/p.####.exr"
    assert load(os.path.join(target, "parameters.yaml"))["DepthDir"] == os.path.dirname(depth)


def test_a_depth_model_folder_is_a_path_parameter(clip, tmp_path):
    models = str(tmp_path / "models" / "tiny")
    target = str(tmp_path / "m")
    assert cli.main(["farm", "template", clip, str(tmp_path / "o" / "x.####.exr"), "--depth-model", "tiny",
                     "--depth-checkpoint", models, "--size", "8", "--focus-point", "4,4", "--out-dir", target]) == 0
    template = load(os.path.join(target, "template.yaml"))
    args = template["steps"][0]["script"]["actions"]["onRun"]["args"]
    assert args[args.index("--depth-checkpoint") + 1] == "{{Param.ModelDir}}"
    assert load(os.path.join(target, "parameters.yaml"))["ModelDir"] == models
    model_dir = next(p for p in template["parameterDefinitions"] if p["name"] == "ModelDir")
    assert (model_dir["type"], model_dir["objectType"], model_dir["dataFlow"]) == ("PATH", "DIRECTORY", "IN")


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("extra, needle", [
    (["--overwrite"], "tasks always resume"),
    (["--chunk-size", "0"], "chunk size"),
    (["--listed-chunks", "--frames", "1-2000", "--chunk-size", "1"], "pass --chunk-size 2 or more"),
])
def test_farm_template_refuses_with_what_to_do(clip, tmp_path, capsys, extra, needle):
    out = str(tmp_path / "out" / "p_dof.####.exr")
    assert cli.main(["farm", "template", clip, out, *LOOK, "--out-dir", str(tmp_path / "t"), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and "hint:" in err
    assert not os.path.exists(tmp_path / "t" / "template.yaml")


def test_no_frames_on_disk_and_none_named_is_refused(tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "p.####.exr")
    assert cli.main(["farm", "template", missing, str(tmp_path / "o.####.exr"), *LOOK,
                     "--out-dir", str(tmp_path / "t")]) == 2
    assert "pass --frames" in capsys.readouterr().err
    # Named frames need no input here (the farm hosts see it, the workstation may not).
    assert cli.main(["farm", "template", missing, str(tmp_path / "o.####.exr"), *LOOK, "--frames", "1-3",
                     "--out-dir", str(tmp_path / "t")]) == 0


def test_a_name_openjd_would_misread_is_refused(tmp_path, capsys):
    assert cli.main(["farm", "template", str(tmp_path / "p{{x}}.####.exr"), str(tmp_path / "o.####.exr"),
                     *LOOK, "--frames", "1", "--out-dir", str(tmp_path / "t")]) == 2
    assert "template expression" in capsys.readouterr().err


def test_farm_template_help_does_not_import_torch():
    code = ("import sys; from focuspull.commands.cli import main; rc = main(['farm', 'template', '--help']); "
            "print('TORCH', 'torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip().endswith("TORCH False 0")
    assert "--chunk-size" in out.stdout and "--focal-length" in out.stdout and "--bundle" in out.stdout
