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

# The refiner shipped in the repository (models/ next to server/); docs/refine.md.
DEFAULT_REFINER = str(Path(__file__).resolve().parents[3] / "models" / "refiner-small")

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from focuspull.stages.lens import DEPTH_MATHS  # numpy only

    parser.add_argument("input", metavar="IN", help="input sequence, e.g. shot.####.exr or shot.%%04d.exr")
    parser.add_argument("output", metavar="OUT", help="output sequence, e.g. out/shot_dof.####.exr")

    parser.add_argument("--input-transfer", metavar="CURVE",
                        help="transfer function of display-referred input (srgb, rec709, gamma2.2, "
                             "linear); default: linear for EXR, sRGB for PNG/JPEG")

    lens = parser.add_argument_group("lens (physical)")
    lens.add_argument("--focal-length", metavar="MM", help="focal length in mm (default 50)")
    lens.add_argument("--fstop", metavar="N", help="f-number, e.g. 2.8 (default 2.8)")
    lens.add_argument("--sensor-width", metavar="MM",
                      help="sensor/film back width in mm (default 36, full frame)")
    lens.add_argument("--cg-camera", action="store_true",
                      help="match a CG render's own depth of field (Blender Cycles and other renderers "
                           "whose image plane stays at the focal length; ~4%% less blur up close)")
    lens.add_argument("--camera", metavar="FILE.json",
                      help="per-frame camera exported from CG: focal_length_mm, fstop, "
                           "focus_distance_m, sensor_width_mm (options override it)")

    art = parser.add_argument_group("lens (artistic, for relative depth)")
    art.add_argument("--size", metavar="PX", help="blur radius in px of things at infinity (ZDefocus size)")
    art.add_argument("--k", metavar="K", help="blur radius in px per unit of disparity (Any-to-Bokeh K)")
    art.add_argument("--max-size", metavar="PX", type=float, help="cap the blur radius at PX")

    focus = parser.add_argument_group("focus (one of)")
    focus.add_argument("--focus-distance", metavar="M", help="focus distance in metres (default 3)")
    focus.add_argument("--focus-point", metavar="X,Y[@FRAME]",
                       help="focus on the depth at pixel X,Y; with @FRAME the point is picked on "
                            "FRAME and tracked through the shot")
    focus.add_argument("--focus-matte", metavar="CHANNEL",
                       help="focus on what the matte channel covers (e.g. matte.A)")
    focus.add_argument("--focus-disparity", metavar="D",
                       help="focus where the disparity is D: 1/metres with --depth-math depth "
                            "(0.5 = 2 m); the channel's own value with far=0 (1/z) and "
                            "disparity_norm (0..1, near = 1; also --depth-model); unused with direct")
    focus.add_argument("--focus-smooth", metavar="FRAMES", type=int, default=0,
                       help="steady a point/matte focus over +-FRAMES frames (default 0 = off)")

    depth = parser.add_argument_group("depth")
    depth.add_argument("--depth-channel", metavar="NAME",
                       help="channel holding depth (default: first of Z, depth.Z, depth, ...)")
    depth.add_argument("--depth", metavar="PATTERN", help="depth from a separate sequence")
    depth.add_argument("--depth-model", metavar="NAME", help="estimate depth with this model")
    depth.add_argument("--depth-checkpoint", metavar="DIR", help="local folder with the model weights")
    depth.add_argument("--depth-math", choices=DEPTH_MATHS, default="depth",
                       help="what the depth values mean: depth = distance in metres, far=0 = 1/z, "
                            "disparity_norm = 0..1 near=1, direct = CoC radius in px (default depth)")
    depth.add_argument("--bad-depth", choices=("error", "far"), default="error",
                       help="NaN/negative depth: stop with an error, or treat it as infinitely far")
    depth.add_argument("--stabilise", metavar="FRAMES", type=int, default=0,
                       help="steady flickering depth over +-FRAMES frames (default 0 = off)")

    bokeh = parser.add_argument_group("bokeh")
    bokeh.add_argument("--blades", metavar="N", type=int, default=0, help="aperture blades (0 = round disc, default)")
    bokeh.add_argument("--rotation", metavar="DEG", type=float, default=0.0, help="blade rotation in degrees")
    bokeh.add_argument("--roundness", metavar="0..1", type=float, default=0.0, help="0 = straight blades .. 1 = round")
    bokeh.add_argument("--highlight-threshold", metavar="T", type=float,
                       help="display-referred input: boost highlights above T (0..1) into bokeh balls")
    bokeh.add_argument("--highlight-gain", metavar="G", type=float, default=4.0,
                       help="highlight boost (default 4)")

    out = parser.add_argument_group("frames and output")
    out.add_argument("--frames", metavar="RANGE", help="e.g. 1001-1100, 1-100x2, 1001,1005 (default: all on disk)")
    out.add_argument("--resume", action="store_true", help="skip frames already complete in OUT")
    out.add_argument("--overwrite", action="store_true", help="replace existing frames in OUT")
    out.add_argument("--compression", metavar="NAME", default="zip",
                     help="EXR compression: zip (default), piz, dwaa, dwaa:45 (with a level), htj2k, none, ...")
    out.add_argument("--float", dest="half", action="store_false",
                     help="write 32-bit float colour (default: half float)")
    out.add_argument("--no-depth-out", dest="keep_depth", action="store_false",
                     help="do not copy the depth channel into the output EXRs")
    out.add_argument("--preview", metavar="MOVIE.mp4", help="also write an sRGB H.264 preview movie")
    out.add_argument("--preview-fps", metavar="FPS", type=float, help="preview frame rate (default 24 or the camera's)")
    out.add_argument("--setup-view", action="store_true",
                     help="write the focal-plane setup view instead (green in focus, red in front, blue behind)")

    run_group = parser.add_argument_group("render")
    run_group.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    run_group.add_argument("--plane-spacing", metavar="PX", type=float, default=1.0,
                           help="CoC step between layers; larger is faster, coarser (default 1)")
    run_group.add_argument("--refine", metavar="DIR", nargs="?", const=DEFAULT_REFINER, default=None,
                           help="refine the render with the learned refiner in DIR "
                                "(without DIR: the shipped models/refiner-small); docs/refine.md")
    run_group.add_argument("--quiet", action="store_true", help="no progress line")
    run_group.add_argument("--print-job", action="store_true",
                           help="print the job as JSON (for the farm / focuspull submit) and exit")


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
    """The job map for ``RenderJob.from_dict`` from parsed options (no file access but --camera)."""
    from focuspull.errors import InputError
    from focuspull.spec.keyframes import load_camera, parse_animated

    camera = load_camera(args.camera) if args.camera else {}

    def animated(option: str, value, camera_field: str | None = None):
        if value is not None:
            return parse_animated(value, option).to_dict()
        if camera_field and camera_field in camera:
            return camera[camera_field].to_dict()
        return None

    artistic = args.size is not None or args.k is not None
    if args.size is not None and args.k is not None:
        raise InputError("--size and --k both set the blur", "pass one of --size PX or --k K")
    physical_given = [o for o, v in (("--focal-length", args.focal_length), ("--fstop", args.fstop),
                                     ("--sensor-width", args.sensor_width), ("--camera", args.camera))
                      if v is not None]
    if artistic and physical_given:
        raise InputError(f"{physical_given[0]} (physical lens) and {'--size' if args.size else '--k'} "
                         "(artistic blur) both set the blur",
                         "use the physical lens options or --size/--k, not both")
    lens: dict = {"mode": "artistic" if artistic else "physical", "max_size_px": args.max_size}
    if args.cg_camera:
        if artistic:
            raise InputError("--cg-camera applies to the physical lens", "drop --size/--k, or drop --cg-camera")
        lens["cg_camera"] = True
    if artistic:
        lens["size_px" if args.size is not None else "k"] = animated(
            "--size" if args.size is not None else "--k", args.size if args.size is not None else args.k)
    else:
        for key, option, value, cam in (("focal_length_mm", "--focal-length", args.focal_length, "focal_length_mm"),
                                        ("fstop", "--fstop", args.fstop, "fstop"),
                                        ("sensor_width_mm", "--sensor-width", args.sensor_width, "sensor_width_mm")):
            v = animated(option, value, cam)
            if v is not None:
                lens[key] = v

    chosen = [o for o, v in (("--focus-distance", args.focus_distance), ("--focus-point", args.focus_point),
                             ("--focus-matte", args.focus_matte), ("--focus-disparity", args.focus_disparity))
              if v is not None]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} both set the focus", "pass only one focus option")
    focus: dict = {"smoothing_window": args.focus_smooth}
    if args.focus_point is not None:
        x, y, frame = _parse_point(args.focus_point)
        focus.update(mode="point", point_x=x, point_y=y, track_from_frame=frame)
    elif args.focus_matte is not None:
        focus.update(mode="matte", matte_channel=args.focus_matte)
    elif args.focus_disparity is not None:
        focus.update(mode="disparity", disparity=animated("--focus-disparity", args.focus_disparity))
    else:
        distance = animated("--focus-distance", args.focus_distance, "focus_distance_m")
        focus.update(mode="distance", **({"distance_m": distance} if distance is not None else {}))

    if args.depth is not None and args.depth_model is not None:
        raise InputError("--depth and --depth-model both give the depth", "pass one of them")
    kind = "sequence" if args.depth else "model" if args.depth_model else "channel"
    depth = {"kind": kind, "channel": args.depth_channel, "pattern": args.depth,
             "model": args.depth_model, "checkpoint_dir": args.depth_checkpoint,
             "depth_math": "disparity_norm" if kind == "model" else args.depth_math,
             "bad_depth": args.bad_depth, "stabilise_window": args.stabilise}

    frames: list = []
    if args.frames:
        from focuspull.io.frames import parse_frame_range

        frames = parse_frame_range(args.frames)
    fps = args.preview_fps
    if fps is None:
        fps = camera["fps"].value_at(0) if "fps" in camera else 24.0
    return {
        "input": {"pattern": args.input, "transfer": args.input_transfer},
        "frames": frames,
        "depth": depth,
        "lens": lens,
        "focus": focus,
        "aperture": {"blades": args.blades, "rotation_deg": args.rotation, "roundness": args.roundness},
        "highlights": {"threshold": args.highlight_threshold, "gain": args.highlight_gain},
        "output": {"pattern": args.output, "compression": args.compression, "half": args.half,
                   "resume": args.resume, "overwrite": args.overwrite, "preview": args.preview,
                   "preview_fps": float(fps), "setup_view": args.setup_view, "keep_depth": args.keep_depth},
        "refine": {"model_dir": None if args.refine is None else str(args.refine)},
        "device": args.device,
        "plane_spacing_px": args.plane_spacing,
    }


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


def run(args: argparse.Namespace) -> int:
    from focuspull.spec.job import RenderJob

    job = RenderJob.from_dict(job_dict_from_args(args))
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
