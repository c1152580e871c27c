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

HELP = "render depth of field (bokeh) over an image sequence with depth"

EPILOG = """units: lengths in mm (--focal-length, --sensor-width), distances in metres
(--focus-distance), blur sizes in pixels (radius), rotation in degrees.  Pixel positions
(--focus-point) are from the top-left corner, y down.

animated values: any lens/focus number may be keyframed FRAME:VALUE,...  Linear in
between, held before the first and after the last key; add @smooth for an ease that
never overshoots.  --focus-distance 1001:1.5,1040:8@smooth racks from 1.5 m to 8 m.

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


# CLI groups for registry sections (the order of --help).
_GROUPS = (("input", "input"), ("lens", "lens (physical) or blur size (artistic, for relative depth)"),
           ("focus", "focus (one of)"),
           ("depth", "depth"), ("aperture", "bokeh"), ("highlights", "bokeh highlights (display-referred input)"),
           ("output", "frames and output"), ("", "render"))
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

    parser.add_argument("input", metavar="IN", help="input sequence, e.g. shot.####.exr or shot.%%04d.exr")
    parser.add_argument("output", metavar="OUT", help="output sequence, e.g. out/shot_dof.####.exr")
    groups = {section: parser.add_argument_group(title) for section, title in _GROUPS}
    for entry in FIELDS:
        if not entry.flag:
            continue
        group = groups[entry.section]
        kwargs = {"dest": entry.path.replace(".", "__"), "default": None, "help": _option_help(entry)}
        if entry.kind == "bool":
            group.add_argument(entry.flag, action="store_const", const=True, **kwargs)
        elif entry.kind == "choice":
            group.add_argument(entry.flag, choices=entry.choices, **kwargs)
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
    groups[""].add_argument("--quiet", action="store_true", help="no progress line")
    groups[""].add_argument("--print-job", action="store_true",
                            help="print the job as JSON (for the farm / focuspull submit) and exit")


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


def _parse_point(text: str) -> tuple[float, float, int | None]:
    from focuspull.errors import InputError

    body, _, frame_text = text.partition("@")
    try:
        x_text, y_text = body.split(",")
        x, y = float(x_text), float(y_text)
        frame = int(frame_text) if frame_text else None
    except ValueError:
        raise InputError(f"--focus-point {text!r} is not X,Y or X,Y@FRAME",
                         "pass pixels from the top-left corner, e.g. --focus-point 960,540@1001") from None
    return x, y, frame


def job_dict_from_args(args: argparse.Namespace) -> dict:
    """The job map for ``RenderJob.from_dict`` from parsed options (no file access but --camera).

    Only what the options decide is set here (which lens, focus and depth mode); values pass
    through as typed, and the spec validates each once."""
    from focuspull.errors import InputError
    from focuspull.spec.keyframes import load_camera

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
    from focuspull.pipeline.run import run_job
    from focuspull.pipeline.progress import ProgressLine

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
