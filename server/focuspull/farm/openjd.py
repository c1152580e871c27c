"""A render job as an Open Job Description (2023-09) job template, its parameter values, and
a Deadline Cloud job bundle.  Pure functions over plain data (no file access but the writers).

The template has two steps:

* ``Render`` -- one task per chunk of frames.  Its task parameter ``Frame`` is a
  ``CHUNK[INT]`` (the ``TASK_CHUNKING`` extension) over the job parameter ``Frames``, in
  chunks of ``ChunkSize`` frames (or, with ``listed_chunks``, a STRING parameter listing the
  chunks, for runtimes without the extension); each task runs ::

      focuspull render IN OUT --job JOB.json --frames CHUNK --resume --device DEVICE

  so a task is given exactly its frames (no two chunks share a frame) and a rerun of a failed
  or killed task redoes only the frames it is missing.  Temporal stages (depth stabilisation,
  focus smoothing, tracking) read their context frames from the input themselves, so the
  chunks give the frames of one run, bit for bit.
* ``Preview`` -- after every ``Render`` task: the same command over all of ``Frames`` with
  ``--preview``; every frame is already complete, so it only reads them back into the movie.

The look (lens and focus keyframes, bokeh, depth math) lives in the job JSON file next to the
template; the template carries only paths (``PATH`` job parameters, so a farm can map them
between operating systems and Deadline Cloud job attachments can move them), the frames, the
chunk size and the device.

Parameter values come in two spellings: ``{"Name": value}`` for ``openjd run -p file://...``
and ``{"parameterValues": [{"name": ..., "value": ...}]}`` for a Deadline Cloud bundle's
``parameter_values.yaml``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from focuspull.errors import InputError

SPECIFICATION_VERSION = "jobtemplate-2023-09"
#: The longest value an OpenJD job parameter may hold (2023-09 schema).
MAX_PARAMETER_CHARS = 1024
#: The most values a task parameter's range may list (2023-09 schema).
MAX_LISTED_CHUNKS = 1024
RENDER_STEP, PREVIEW_STEP, CHUNK_PARAMETER = "Render", "Preview", "Frame"
JOB_FILE_NAME = "job.json"
DEFAULT_CHUNK_SIZE = 10


@dataclass(frozen=True)
class FarmJob:
    """What the template is made of: the job map (already validated) and its farm settings.

    Attributes:
        job: the render job map (``RenderJob.to_dict()``), absolute paths.
        frames: every frame to render, sorted.
        chunk_size: frames per task (the last task may have fewer).
        preview: the preview movie the last step writes (absolute path).
        name: the job's name on the farm.
        listed_chunks: True lists the chunks in the template (a STRING task parameter) for
            runtimes without the ``TASK_CHUNKING`` extension; frames and chunk size are then
            fixed when the template is written, not job parameters.
    """

    job: dict
    frames: tuple
    chunk_size: int
    preview: str
    name: str
    listed_chunks: bool = False


def range_expression(frames) -> str:
    """Frame numbers as an OpenJD range expression: ``[1, 2, 3, 7, 9, 11] -> "1-3,7-11:2"``.

    Runs of equal steps (of three frames or more) become ``a-b:s`` (``a-b`` for step 1); the
    rest are listed.  ``focuspull render --frames`` reads the same spelling."""
    ordered = sorted(set(int(f) for f in frames))
    if not ordered:
        raise InputError("no frames to render", "pass --frames, e.g. --frames 1001-1100")
    parts, i = [], 0
    while i < len(ordered):
        j = i
        if i + 1 < len(ordered):
            step = ordered[i + 1] - ordered[i]
            while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == step:
                j += 1
        if j - i >= 2 or (j - i == 1 and ordered[j] - ordered[i] == 1):
            step = ordered[i + 1] - ordered[i]
            parts.append(f"{ordered[i]}-{ordered[j]}" + (f":{step}" if step > 1 else ""))
            i = j + 1
        else:
            parts.append(str(ordered[i]))
            i += 1
    return ",".join(parts)


def chunks(frames, chunk_size: int) -> list[list[int]]:
    """The frames of each task: the listed chunks of ``--listed-chunks``, and the chunks a runner
    forms for ``CHUNK[INT]`` with a fixed ``defaultTaskCount`` and ``NONCONTIGUOUS``."""
    ordered = sorted(frames)
    return [ordered[i:i + chunk_size] for i in range(0, len(ordered), chunk_size)]


def default_preview_path(output_pattern: str) -> str:
    """``out/shot_dof.####.exr -> out/shot_dof.mp4`` (the frame token and its separator dropped)."""
    from focuspull.io.frames import SequencePattern

    pattern = SequencePattern(output_pattern)
    stem = pattern.prefix.rstrip("._-") or "preview"
    return os.path.join(pattern.directory, stem + ".mp4")


# --------------------------------------------------------------------------- job parameters
def _path_parameter(name: str, object_type: str, data_flow: str, label: str, description: str,
                    control: str, default: Optional[str] = None) -> dict:
    parameter = {"name": name, "type": "PATH", "objectType": object_type, "dataFlow": data_flow,
                 "description": description, "userInterface": {"control": control, "label": label}}
    if default is not None:
        parameter["default"] = default
    return parameter


def _split(pattern: str, what: str) -> tuple[str, str]:
    """``/shots/a/plate.####.exr -> ("/shots/a", "plate.####.exr")``, refusing what a format
    string would misread."""
    directory, name = os.path.split(pattern)
    if "{{" in name or "}}" in name:
        raise InputError(f"the {what} {pattern!r} has '{{{{' or '}}}}' in its file name, which OpenJD reads "
                         "as a template expression", f"rename the {what} files")
    if not directory:
        raise InputError(f"the {what} {pattern!r} has no directory", "pass an absolute path")
    return directory, name


def _sources(job: dict) -> list[tuple[str, str, str, str]]:
    """``(parameter, directory, file name or "", label)`` of every input folder the job reads."""
    depth = job["depth"]
    folders = [("InputDir", *_split(job["input"]["pattern"], "input"), "Input frames folder")]
    if depth["kind"] == "sequence":
        folders.append(("DepthDir", *_split(depth["pattern"], "depth sequence"), "Depth frames folder"))
    if depth["kind"] == "model" and depth.get("checkpoint_dir"):
        folders.append(("ModelDir", depth["checkpoint_dir"], "", "Depth model folder"))
    return folders


def job_template(farm: FarmJob) -> dict:
    """The OpenJD 2023-09 job template (a plain map; :func:`dump_yaml` writes it)."""
    job = farm.job
    sources = _sources(job)
    _, out_name = _split(job["output"]["pattern"], "output")
    _split(farm.preview, "preview")  # refuse a name OpenJD would misread
    parameters = [_path_parameter("JobFile", "FILE", "IN", "focuspull job",
                                  "The focuspull job (lens and focus keyframes, bokeh, depth) the tasks render.",
                                  "CHOOSE_INPUT_FILE", default=JOB_FILE_NAME)]
    for name, _, _, label in sources:
        parameters.append(_path_parameter(name, "DIRECTORY", "IN", label, f"{label} the job reads.",
                                          "CHOOSE_DIRECTORY"))
    parameters += [
        _path_parameter("OutputDir", "DIRECTORY", "OUT", "Output frames folder",
                        "Folder the rendered frames are written to.", "CHOOSE_DIRECTORY"),
        _path_parameter("Preview", "FILE", "OUT", "Preview movie",
                        "The sRGB preview movie written from the finished frames.", "CHOOSE_OUTPUT_FILE")]
    if not farm.listed_chunks:
        parameters += [
            {"name": "Frames", "type": "STRING", "minLength": 1, "default": range_expression(farm.frames),
             "description": "Frames to render (OpenJD range expression, e.g. 1001-1100 or 1-99:2).",
             "userInterface": {"control": "LINE_EDIT", "label": "Frames"}},
            {"name": "ChunkSize", "type": "INT", "minValue": 1, "default": farm.chunk_size,
             "description": "Frames per task.", "userInterface": {"control": "SPIN_BOX", "label": "Frames per task"}}]
    parameters.append({"name": "Device", "type": "STRING", "minLength": 1, "default": job.get("device") or "cpu",
                       "description": "Where frames render: cpu, cuda or cuda:N.",
                       "userInterface": {"control": "LINE_EDIT", "label": "Device"}})
    render_args = ["render", "{{Param.InputDir}}/" + sources[0][2], "{{Param.OutputDir}}/" + out_name,
                   "--job", "{{Param.JobFile}}"]
    for name, _, file_name, _ in sources[1:]:
        if name == "DepthDir":
            render_args += ["--depth", "{{Param.DepthDir}}/" + file_name]
        elif name == "ModelDir":
            render_args += ["--depth-checkpoint", "{{Param.ModelDir}}"]
    render_args += ["--resume", "--device", "{{Param.Device}}"]
    if farm.listed_chunks:
        chunk = {"name": CHUNK_PARAMETER, "type": "STRING",
                 "range": [range_expression(part) for part in chunks(farm.frames, farm.chunk_size)]}
        all_frames = range_expression(farm.frames)
    else:
        chunk = {"name": CHUNK_PARAMETER, "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
                 "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "NONCONTIGUOUS"}}
        all_frames = "{{Param.Frames}}"
    render_step = {
        "name": RENDER_STEP,
        "description": "Render the frames of one chunk (focuspull render --frames CHUNK --resume).",
        "parameterSpace": {"taskParameterDefinitions": [chunk]},
        "script": {"actions": {"onRun": {
            "command": "focuspull", "args": render_args + ["--frames", "{{Task.Param." + CHUNK_PARAMETER + "}}"]}}},
    }
    preview_step = {
        "name": PREVIEW_STEP,
        "description": "Write the preview movie from the finished frames.",
        "dependencies": [{"dependsOn": RENDER_STEP}],
        "script": {"actions": {"onRun": {
            "command": "focuspull",
            "args": render_args + ["--frames", all_frames, "--preview", "{{Param.Preview}}"]}}},
    }
    template = {"specificationVersion": SPECIFICATION_VERSION, "extensions": ["TASK_CHUNKING"],
                "name": farm.name, "description": f"focuspull: depth of field over {job['input']['pattern']}",
                "parameterDefinitions": parameters, "steps": [render_step, preview_step]}
    if farm.listed_chunks:
        del template["extensions"]
    return template


def parameter_values(farm: FarmJob, job_file: Optional[str]) -> dict:
    """``{"Name": value}`` for every job parameter; ``job_file`` None leaves ``JobFile`` at its
    default (``job.json`` beside the template, as a Deadline Cloud bundle resolves it)."""
    job = farm.job
    values = {} if job_file is None else {"JobFile": job_file}
    for name, directory, _, _ in _sources(job):
        values[name] = directory
    values["OutputDir"] = _split(job["output"]["pattern"], "output")[0]
    values["Preview"] = farm.preview
    if not farm.listed_chunks:
        values["Frames"] = range_expression(farm.frames)
        values["ChunkSize"] = farm.chunk_size
    values["Device"] = job.get("device") or "cpu"
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_PARAMETER_CHARS:
            what = "the frame list" if name == "Frames" else f"the path of {name}"
            raise InputError(f"{what} is {len(value)} characters long; an OpenJD job parameter holds at most "
                             f"{MAX_PARAMETER_CHARS}", "render fewer, evenly spaced ranges per job, or shorter paths")
    return values


def bundle_parameter_values(farm: FarmJob) -> dict:
    """Deadline Cloud ``parameter_values.yaml``: the job file stays the bundle's own."""
    return {"parameterValues": [{"name": name, "value": value}
                                for name, value in parameter_values(farm, None).items()]}


def asset_references(farm: FarmJob) -> dict:
    """Deadline Cloud ``asset_references.yaml``: the folders the job reads and writes."""
    values = parameter_values(farm, None)
    inputs = [values[name] for name, _, _, _ in _sources(farm.job)]
    outputs = sorted({values["OutputDir"], os.path.dirname(values["Preview"])})
    return {"assetReferences": {"inputs": {"directories": sorted(set(inputs)), "filenames": []},
                                "outputs": {"directories": outputs}, "referencedPaths": []}}


# --------------------------------------------------------------------------- planning
def _absolute(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else path


def farm_job(job, *, chunk_size: int = DEFAULT_CHUNK_SIZE, name: Optional[str] = None,
             listed_chunks: bool = False) -> FarmJob:
    """Plan the farm render of a validated :class:`~focuspull.spec.job.RenderJob`.

    Paths become absolute (farm hosts do not share the working directory); the frames are the
    job's, or every frame of the input on disk; the preview is the job's or one beside the
    output frames.  The job map written next to the template always resumes, and leaves the
    preview to the last step (render tasks writing one movie each would race for it)."""
    from focuspull.io.frames import SequencePattern
    from focuspull.spec.job import RenderJob

    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"the chunk size must be a whole number of frames >= 1, got {chunk_size!r}",
                         f"pass e.g. --chunk-size {DEFAULT_CHUNK_SIZE}")
    plain = job.to_dict()
    if not plain["input"]["pattern"] or not plain["output"]["pattern"]:
        raise InputError("a farm render reads and writes image sequences on disk, but the job has no "
                         f"{'input' if not plain['input']['pattern'] else 'output'} pattern",
                         "give the input and output sequences (IN OUT)")
    for section, key in (("input", "pattern"), ("depth", "pattern"), ("depth", "checkpoint_dir"),
                         ("output", "pattern"), ("output", "preview")):
        plain[section][key] = _absolute(plain[section][key])
    frames = tuple(plain["frames"]) or tuple(SequencePattern(plain["input"]["pattern"]).frames_on_disk())
    if not frames:
        raise InputError(f"no frames of {plain['input']['pattern']} are on disk here, and the job names none",
                         "pass --frames, e.g. --frames 1001-1100 (the farm hosts must see the input)")
    preview = plain["output"]["preview"] or default_preview_path(plain["output"]["pattern"])
    plain["frames"] = list(frames)
    plain["output"].update(preview=None, resume=True, overwrite=False)
    RenderJob.from_dict(plain)  # the file the tasks render is a valid job
    if name is None:
        name = "focuspull " + os.path.basename(default_preview_path(plain["output"]["pattern"]))[:-4]
    name = "".join(c for c in name if c.isprintable() and c not in "{}")[:128].strip()
    if not name:
        raise InputError("the farm job name is empty", "pass --name, e.g. --name 'sh010 dof'")
    if listed_chunks:
        count = len(chunks(frames, chunk_size))
        if count > MAX_LISTED_CHUNKS:
            raise InputError(f"{count} chunks of {chunk_size} frames; a task parameter lists at most "
                             f"{MAX_LISTED_CHUNKS} values", f"pass --chunk-size {-(-len(frames) // MAX_LISTED_CHUNKS)} "
                             "or more, or drop --listed-chunks")
        for part in chunks(frames, chunk_size):
            if len(range_expression(part)) > MAX_PARAMETER_CHARS:
                raise InputError(f"a chunk's frame list is longer than {MAX_PARAMETER_CHARS} characters",
                                 "use a smaller --chunk-size or evenly spaced frames")
    return FarmJob(job=plain, frames=frames, chunk_size=chunk_size, preview=preview, name=name,
                   listed_chunks=listed_chunks)


__all__ = ["FarmJob", "farm_job", "job_template", "parameter_values", "bundle_parameter_values", "asset_references",
           "range_expression", "chunks", "default_preview_path", "SPECIFICATION_VERSION", "RENDER_STEP",
           "PREVIEW_STEP", "CHUNK_PARAMETER", "JOB_FILE_NAME", "DEFAULT_CHUNK_SIZE"]
