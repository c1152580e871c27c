"""``focuspull render IN OUT``: render depth of field over an image sequence.

The options are named the way compositors say them (focal length, f-stop, focus distance,
blades...).  They are turned into a :class:`focuspull.spec.job.RenderJob` by
:func:`job_dict_from_args` -- the same job a Nuke/Resolve host or ``focuspull submit``
sends -- and rendered with :func:`focuspull.pipeline.run.run_job`.

Precedence: a command-line option > the ``--camera`` file > the default.
Nothing heavy is imported until :func:`run` (``focuspull --help`` stays fast).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

HELP = "render depth of field (bokeh) over an image sequence with depth"

EPILOG = """units: lengths in mm (--focal-length, --sensor-width), distances in metres
(--focus-distance), blur sizes in pixels (radius), rotation in degrees.  Pixel positions
(--focus-point) are display-window pixels from the top-left corner, y down; with
--focus-origin bottom-left they are Nuke's (origin bottom-left, y up).

animated values: every lens, focus and aperture number (blades, rotation, roundness,
aspect, --max-size, --dof too) may be keyframed FRAME:VALUE,...  Linear in between, held
before the first and after the last key; add @smooth for an ease that never overshoots.
--focus-distance 1001:1.5,1040:8@smooth racks from 1.5 m to 8 m.

frame ranges: --frames 1-100x2 (or 1-100:2) is every 2nd frame, 1,3,...,99.  fileseq
(and tools built on it) reads 1-100:2 differently: "staggered", every frame of 1-100,
ordered 1-100x2 first and then the rest.  Write 1-100x2 in farm templates shared with
such tools: it means the same everywhere.

colour: --input-transfer names the input's colour space (srgb, rec709, acescct, logc3, any
space of the OCIO config); the bokeh is computed in the --working-space (default ACEScg)
and EXRs are written there; PNG/TIFF/DPX output is re-encoded in the input's space (or
--output-space).  --config picks the OCIO config (default $OCIO, else the built-in ACES one).

examples:
  focuspull render shot.####.exr out/shot_dof.####.exr --focal-length 35 --fstop 2 \\
      --focus-distance 3.2
  focuspull render plate.####.exr out/plate_dof.####.exr --depth depth/plate.####.exr \\
      --depth-math far=0 --focus-point 960,540@1001 --blades 7 --frames 1001-1100
  focuspull render cg.####.exr out/cg.####.exr --camera cam.json --preview out/cg.mp4
  focuspull render plate.####.png out/plate.####.exr --depth-model tiny \\
      --depth-checkpoint ./models/tiny --size 12 --focus-point 400,300 --stabilise 2
  focuspull render shot.####.exr out/setup.####.exr --setup-view --focus-distance 3
      (green = in focus, red = in front of it, blue = behind it)

resume a farm render that stopped:  add --resume (complete frames are skipped)."""


# The refiner shipped in the repository (models/ next to server/); docs/refine.md.
DEFAULT_REFINER = str(Path(__file__).resolve().parents[3] / "models" / "refiner-small")

# CLI groups for registry sections (the order of --help).
_GROUPS = (("input", "input"), ("colour", "colour (OpenColorIO)"), ("lens", "lens (physical) or blur size (artistic, for relative depth)"),
           ("focus", "focus (one of)"),
           ("depth", "depth"), ("aperture", "bokeh"), ("highlights", "bokeh highlights (display-referred input)"),
           ("output", "frames and output"), ("refine", "learned refiner (docs/refine.md)"), ("", "render"))
_METAVARS = {"mm": "MM", "m": "M", "px": "PX", "deg": "DEG", "frames": "FRAMES", "fps": "FPS"}


def _option_help(entry) -> str:
    text = entry.help.replace("%", "%%")
    if entry.animatable:
        text += "; animatable"
    if entry.default is not None and entry.kind != "bool":
        text += f" (default {entry.default:g})" if isinstance(entry.default, float) else f" (default {entry.default})"
    if entry.kind in ("int", "float") and entry.range_text():
        text += f" [{entry.range_text()}]"
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options generated from the job field registry (focuspull.spec.fields) plus the few that
    are not one field each (--camera, --focus-point, --frames, ...).  Every registry option
    defaults to None: an option not given leaves the job field at the registry's default."""
    from focuspull.spec.fields import FIELDS

    parser.add_argument("input", metavar="IN", nargs="?",
                        help="input sequence, e.g. shot.####.exr or shot.%%04d.exr (with --job: overrides the job's)")
    parser.add_argument("output", metavar="OUT", nargs="?",
                        help="output sequence, e.g. out/shot_dof.####.exr (with --job: overrides the job's)")
    groups = {section: parser.add_argument_group(title) for section, title in _GROUPS}
    for entry in FIELDS:
        if not entry.flag:
            continue
        group = groups[entry.section]
        kwargs = {"dest": entry.path.replace(".", "__"), "default": None, "help": _option_help(entry)}
        if entry.kind == "bool":
            group.add_argument(entry.flag, action="store_const", const=True, **kwargs)
        elif entry.kind == "choice":
            # Other spellings (ZDefocus's 'far = 0') fold to the registry's names before the check.
            group.add_argument(entry.flag, choices=entry.choices, type=entry.normalise_choice, **kwargs)
        else:
            # Animated numbers stay text: the spec parses keyframes (1001:1.5,1040:8@smooth) once.
            kind = {"int": int, "float": float}.get(entry.kind) if not entry.animatable else None
            metavar = entry.metavar or _METAVARS.get(entry.unit, entry.name.upper())
            group.add_argument(entry.flag, metavar=metavar, **({"type": kind} if kind else {}), **kwargs)
    groups["lens"].add_argument("--camera", metavar="FILE.json",
                                help="per-frame camera exported from CG: focal_length_mm, fstop, "
                                     "focus_distance_m, sensor_width_mm (options override it)")
    groups["focus"].add_argument("--focus-point", metavar="X,Y[@FRAME]",
                                 help="focus on the depth at pixel X,Y; with @FRAME the point is picked on "
                                      "FRAME and tracked through the shot")
    out = groups["output"]
    out.add_argument("--frames", metavar="RANGE", help="e.g. 1001-1100, 1-100x2, 1001,1005 (default: all on disk)")
    out.add_argument("--float", dest="output__half", action="store_const", const=False,
                     help="write 32-bit float colour (default: half float)")
    out.add_argument("--no-depth-out", dest="output__keep_depth", action="store_const", const=False,
                     help="do not copy the depth channel into the output EXRs")
    groups["refine"].add_argument("--refine", dest="refine__model_dir", metavar="DIR", nargs="?",
                                  const=DEFAULT_REFINER, default=None,
                                  help="refine the render with the learned refiner in DIR (without DIR: the shipped "
                                       "models/refiner-small)")
    groups[""].add_argument("--quiet", action="store_true", help="no progress line")
    groups[""].add_argument("--print-job", action="store_true",
                            help="print the job as JSON (for the farm / focuspull submit) and exit")
    groups[""].add_argument("--job", metavar="FILE.json",
                            help="render the job in FILE (from --print-job, the Nuke node, the Resolve script or "
                                 "focuspull farm); only IN, OUT, --depth, --depth-checkpoint, --preview, "
                                 "--preview-fps, --frames, --resume, --overwrite and --device may override it")


def _given(args: argparse.Namespace) -> dict:
    """``{"lens": {"fstop": "2.8"}, "device": "cpu", ...}``: the registry fields given on the
    command line, as the job map nests them (values untouched: the spec checks them once)."""
    job: dict = {}
    for dest, value in vars(args).items():
        if "__" not in dest and dest not in ("device", "plane_spacing_px"):
            continue
        if value is None:
            continue
        section, _, name = dest.rpartition("__")
        (job.setdefault(section, {}) if section else job)[name] = value
    return job


def command_line(job) -> list[str]:
    """``["focuspull", "render", IN, OUT, "--fstop", "2", ...]`` rendering ``job`` (a RenderJob):
    the inverse of :func:`job_dict_from_args`, generated from the same registry.  Fields at
    their default are left out."""
    from focuspull.spec.fields import FIELDS
    from focuspull.spec.keyframes import Animated

    argv = ["focuspull", "render", job.input.pattern or "IN", job.output.pattern or "OUT"]
    for entry in FIELDS:
        section, _, name = entry.path.rpartition(".")
        value = getattr(getattr(job, section) if section else job, name)
        if not entry.flag or value is None or value == entry.default:
            continue
        if isinstance(value, Animated):
            if value.is_constant and value.keys[0][1] == entry.default:
                continue
            argv += _option(entry.flag, value.to_text())
        elif entry.kind == "bool":
            argv += [entry.flag] if value else []
        elif entry.path == "depth.depth_math" and job.depth.kind == "model":
            continue  # implied by --depth-model
        else:
            argv += _option(entry.flag, repr(value) if isinstance(value, float) else str(value))
    focus = job.focus
    if focus.mode == "point":
        at = "" if focus.track_from_frame is None else f"@{focus.track_from_frame}"
        argv += _option("--focus-point", f"{focus.point_x.to_text()},{focus.point_y.to_text()}{at}")
    if job.frames:
        from focuspull.io.frames import format_frame_ranges

        argv += ["--frames", format_frame_ranges(job.frames).replace(" ", "")]
    if not job.output.half:
        argv.append("--float")
    if not job.output.keep_depth:
        argv.append("--no-depth-out")
    if job.refine.model_dir is not None:
        argv += _option("--refine", job.refine.model_dir)
    return argv


def _option(flag: str, text: str) -> list[str]:
    # "--rotation=-10": a value starting with '-' would read as an option of its own.
    return [f"{flag}={text}"] if text.startswith("-") else [flag, text]


def _parse_point(text: str) -> tuple[float, float, int | None]:
    from focuspull.errors import InputError

    body, _, frame_text = text.partition("@")
    try:
        x_text, y_text = body.split(",")
        x, y = float(x_text), float(y_text)
        frame = int(frame_text) if frame_text else None
    except ValueError:
        raise InputError(f"--focus-point {text!r} is not X,Y or X,Y@FRAME",
                         "pass display-window pixels (from the corner --focus-origin names), "
                         "e.g. --focus-point 960,540@1001") from None
    return x, y, frame


def job_dict_from_args(args: argparse.Namespace) -> dict:
    """The job map for ``RenderJob.from_dict`` from parsed options (no file access but --camera).

    Only what the options decide is set here (which lens, focus and depth mode); values pass
    through as typed, and the spec validates each once."""
    from focuspull.errors import InputError
    from focuspull.spec.keyframes import load_camera

    if getattr(args, "job", None):
        return _job_file_dict(args)
    if not args.input or not args.output:
        raise InputError("the input and output sequences are missing",
                         "pass IN and OUT, e.g. focuspull render shot.####.exr out/shot_dof.####.exr, "
                         "or a job file with --job FILE")
    job = _given(args)
    lens, focus, depth = job.setdefault("lens", {}), job.setdefault("focus", {}), job.setdefault("depth", {})
    output = job.setdefault("output", {})
    camera = load_camera(args.camera) if args.camera else {}
    artistic = "size_px" in lens or "k" in lens
    if "size_px" in lens and "k" in lens:
        raise InputError("--size and --k both set the blur", "pass one of --size PX or --k K")
    physical_given = [o for o, key in (("--focal-length", "focal_length_mm"), ("--fstop", "fstop"),
                                       ("--sensor-width", "sensor_width_mm")) if key in lens]
    physical_given += ["--camera"] if args.camera else []
    if artistic and physical_given:
        raise InputError(f"{physical_given[0]} (physical lens) and {'--size' if 'size_px' in lens else '--k'} "
                         "(artistic blur) both set the blur",
                         "use the physical lens options or --size/--k, not both")
    if artistic and lens.get("cg_camera"):
        raise InputError("--cg-camera applies to the physical lens", "drop --size/--k, or drop --cg-camera")
    lens["mode"] = "artistic" if artistic else "physical"
    if not artistic:
        for key in ("focal_length_mm", "fstop", "sensor_width_mm"):
            if key not in lens and key in camera:
                lens[key] = camera[key].to_dict()

    chosen = [o for o, given in (("--focus-distance", "distance_m" in focus),
                                 ("--focus-point", args.focus_point is not None),
                                 ("--focus-matte", "matte_channel" in focus),
                                 ("--focus-disparity", "disparity" in focus)) if given]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} both set the focus", "pass only one focus option")
    if args.focus_point is not None:
        x, y, frame = _parse_point(args.focus_point)
        focus.update(mode="point", point_x=x, point_y=y, track_from_frame=frame)
    elif "matte_channel" in focus:
        focus["mode"] = "matte"
    elif "disparity" in focus:
        focus["mode"] = "disparity"
    else:
        focus["mode"] = "distance"
        if "distance_m" not in focus and "focus_distance_m" in camera:
            focus["distance_m"] = camera["focus_distance_m"].to_dict()

    if "pattern" in depth and "model" in depth:
        raise InputError("--depth and --depth-model both give the depth", "pass one of them")
    depth["kind"] = "sequence" if "pattern" in depth else "model" if "model" in depth else "channel"
    if depth["kind"] == "model":
        depth["depth_math"] = "disparity_norm"

    if args.frames:
        from focuspull.io.frames import parse_frame_range

        job["frames"] = parse_frame_range(args.frames)
    if "preview_fps" not in output and "fps" in camera:
        output["preview_fps"] = float(camera["fps"].value_at(0))
    job.setdefault("input", {})["pattern"] = args.input
    output["pattern"] = args.output
    return job


# What may override a job file: where things are (paths), which frames, and how to run.  The
# look (lens, focus, bokeh, depth math...) comes from the file alone, so a farm task renders
# exactly the job it was given.
_JOB_FILE_OVERRIDES = ("depth__pattern", "depth__checkpoint_dir", "output__preview", "output__preview_fps",
                       "output__resume", "output__overwrite", "device")
# Options that set a job field without being its registry flag.
_OPTION_FLAGS = {"output__half": "--float", "output__keep_depth": "--no-depth-out"}


def read_job_file(path: str) -> dict:
    """The job map in a JSON file (``--print-job``, the Nuke node, the Resolve script, the farm)."""
    from focuspull.errors import InputError

    try:
        with open(path, encoding="utf-8") as fh:
            job = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the job file {path}: {exc}",
                         "pass a JSON file holding one job, e.g. from focuspull render ... --print-job") from None
    if not isinstance(job, dict):
        raise InputError(f"the job file {path} holds a {type(job).__name__}, not a job map",
                         "the file must be one JSON object, e.g. from focuspull render ... --print-job")
    return job


def _job_file_dict(args: argparse.Namespace) -> dict:
    """The job of ``--job FILE`` with the overrides the command line may make (paths, frames,
    resume/overwrite, device); any option that changes the look is refused, not merged."""
    from focuspull.errors import InputError
    from focuspull.spec.fields import FIELDS

    flags = {entry.path.replace(".", "__"): entry.flag for entry in FIELDS if entry.flag}
    flags.update(_OPTION_FLAGS)
    given = {dest: value for dest, value in vars(args).items() if dest in flags and value is not None}
    refused = [flags[dest] for dest in given if dest not in _JOB_FILE_OVERRIDES]
    refused += [flag for flag, value in (("--camera", args.camera), ("--focus-point", args.focus_point)) if value]
    if refused:
        raise InputError(f"{', '.join(refused)} cannot be combined with --job: the job file sets the look",
                         f"edit the job file {args.job}, or render without --job")
    if args.input and not args.output:
        raise InputError("with --job, pass both IN and OUT or neither",
                         f"add the output sequence, or drop {args.input} to render to the job's own output")
    job = read_job_file(args.job)
    sections = {name: dict(job.get(name) or {}) for name in ("input", "depth", "output")}
    depth, output = sections["depth"], sections["output"]
    for option, dest, kind in (("--depth", "depth__pattern", "sequence"),
                               ("--depth-checkpoint", "depth__checkpoint_dir", "model")):
        if dest in given and depth.get("kind", "channel") != kind:
            raise InputError(f"{option} overrides the depth of a job whose depth.kind is '{kind}', but the job "
                             f"file {args.job} reads its depth from '{depth.get('kind', 'channel')}'",
                             f"drop {option}, or edit depth in the job file")
    for dest, value in given.items():
        section, _, name = dest.rpartition("__")
        (sections[section] if section else job)[name] = value
    # The command line's choice between resume and overwrite replaces the file's.
    if given.get("output__resume") and "output__overwrite" not in given:
        output["overwrite"] = False
    if given.get("output__overwrite") and "output__resume" not in given:
        output["resume"] = False
    if args.input:
        sections["input"]["pattern"] = args.input
    if args.output:
        output["pattern"] = args.output
    if args.frames:
        from focuspull.io.frames import parse_frame_range

        job["frames"] = parse_frame_range(args.frames)
    return {**job, **{name: section for name, section in sections.items() if section or name in job}}


class _InterruptFlag:
    """First Ctrl-C: finish nothing more (the frame in progress is abandoned, never written
    half); a second Ctrl-C interrupts at once.  Both leave only complete frames on disk."""

    def __init__(self) -> None:
        self.set = False
        self._previous = None

    def __enter__(self) -> "_InterruptFlag":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (tests, embedding): keep the default
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        sys.stderr.write("\nfocuspull: stopping (Ctrl-C again to stop at once)\n")
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def __call__(self) -> bool:
        return self.set


def job_from_args(args: argparse.Namespace):
    """The validated job; a refused value that came from ``--camera`` says so."""
    from focuspull.errors import JobSpecError
    from focuspull.spec.job import RenderJob

    mapping = job_dict_from_args(args)
    try:
        return RenderJob.from_dict(mapping)
    except JobSpecError as exc:
        if getattr(args, "job", None):
            # The fault is in the file, so say it in the file's words: the job field in double
            # quotes, which the CLI leaves as it is ('lens.fstop' would be said as --fstop).
            import re

            from focuspull.errors import InputError

            def in_file_words(text: str) -> str:
                return re.sub(r"'([a-z_]+(?:\.[a-z_]+)?)'", r'"\1"', text)
            raise InputError(f"in the job file {args.job}: {in_file_words(exc.message)}",
                             f"{in_file_words(exc.hint)} (in {args.job})" if exc.hint else f"fix {args.job}") from None
        if args.camera and exc.field in _CAMERA_PATHS and exc.field.rpartition(".")[2] not in _options_given(args):
            raise JobSpecError(f"{exc.message} (from the camera file {args.camera})",
                               f"fix {_CAMERA_PATHS[exc.field]} in {args.camera}, or override it with an option",
                               field=exc.field) from None
        raise


# Job fields a --camera file can set, and its key for each.
_CAMERA_PATHS = {"lens.focal_length_mm": "focal_length_mm", "lens.fstop": "fstop",
                 "lens.sensor_width_mm": "sensor_width_mm", "focus.distance_m": "focus_distance_m"}


def _options_given(args: argparse.Namespace) -> set:
    return {name for section in _given(args).values() if isinstance(section, dict) for name in section}


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    if args.print_job:
        print(json.dumps(job.to_dict(), indent=2))
        return 0
    from focuspull.commands.cli import reuse_freed_memory
    from focuspull.pipeline.run import run_job
    from focuspull.pipeline.progress import ProgressLine

    reuse_freed_memory()  # frame-sized buffers are reused, not faulted in again every frame

    progress = None if args.quiet else ProgressLine()
    try:
        with _InterruptFlag() as interrupted:
            result = run_job(job, on_event=progress, cancelled=interrupted)
    finally:
        if progress is not None:
            progress.close()
    rendered = len(result.rendered)
    summary = f"focuspull: rendered {rendered} frame{'s' if rendered != 1 else ''}"
    if result.skipped:
        summary += f", skipped {len(result.skipped)} already complete"
    summary += f" in {result.elapsed_s:.1f} s -> {job.output.pattern}"
    print(summary)
    if result.preview:
        print(f"focuspull: preview -> {result.preview}")
    return 0
