"""``focuspull demo``: make a procedural shot with depth and render a rack focus through it.

Writes, under ``--out`` (default ``./focuspull_demo``):

* ``input/demo.####.exr``  -- the shot: R, G, B scene-linear + Z (depth in metres);
* ``output/demo_dof.####.exr`` -- the render (rack focus from the pillar at 1.6 m to the
  ball at 4.5 m to the wall at 14 m), made by the same :func:`focuspull.pipeline.run.run_job`
  as ``focuspull render``;
* ``output/demo_dof.mp4`` -- an sRGB preview movie;
* ``contact_sheet.png`` -- six frames, input above, render below (sRGB).

The same command line renders it again (printed at the end) so a user can play with the
lens options on a shot whose depth is exact.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time

HELP = "render a rack focus through a procedural test shot (start here)"

EPILOG = """example:
  focuspull demo                       # writes ./focuspull_demo
  focuspull demo --out /tmp/fpdemo --frames 24"""

FIRST_FRAME = 1001
FOCAL_LENGTH_MM = 50.0
FSTOP = 1.8
MAX_SIZE_PX = 24.0
# The renderer's default layer spacing: full quality.  (1.5 px differs by 0.1-0.2 % mean
# absolute on this shot but saves only ~13 % of the render time, so it is not worth it.)
DEMO_PLANE_SPACING_PX = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", default="focuspull_demo",
                        help="folder to write into (default ./focuspull_demo)")
    parser.add_argument("--frames", metavar="N", type=int, default=48, help="length of the shot (default 48)")
    parser.add_argument("--width", type=int, default=960, help="frame width in px (default 960)")
    parser.add_argument("--height", type=int, default=540, help="frame height in px (default 540)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--plane-spacing", metavar="PX", type=float, default=DEMO_PLANE_SPACING_PX,
                        help=f"CoC step between layers; larger is faster, coarser (default {DEMO_PLANE_SPACING_PX})")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def focus_keys(first: int, last: int) -> str:
    """The rack: hold on the pillar, pull to the ball, then to the wall (animated syntax)."""
    from focuspull.commands import demo_scene as scene

    span = last - first
    keys = [(first, scene.PILLAR_DEPTH_M), (first + round(span * 0.15), scene.PILLAR_DEPTH_M),
            (first + round(span * 0.45), scene.BALL_DEPTH_M), (first + round(span * 0.6), scene.BALL_DEPTH_M),
            (last, scene.WALL_DEPTH_M)]
    unique: dict[int, float] = {}
    for frame, value in keys[:-1]:
        unique.setdefault(frame, value)  # short shots: start on the pillar whatever coincides
    unique[last] = scene.WALL_DEPTH_M  # ... and end on the wall
    return ",".join(f"{f}:{v}" for f, v in sorted(unique.items())) + "@smooth"


def write_input(out_dir: str, frame_count: int, width: int, height: int) -> str:
    """Write the procedural shot as EXR (R, G, B, Z); return its pattern."""
    from focuspull.commands.demo_scene import DemoScene
    from focuspull.io.images import write_image
    import numpy as np

    pattern = os.path.join(out_dir, "input", "demo.####.exr")
    os.makedirs(os.path.dirname(pattern), exist_ok=True)
    scene = DemoScene(width, height, frame_count)
    for i in range(frame_count):
        frame = scene.frame(i)
        pixels = np.concatenate([frame.rgb, frame.depth_m[:, :, None]], axis=2)
        write_image(pattern.replace("####", f"{FIRST_FRAME + i:04d}"), pixels, ["R", "G", "B", "Z"])
    return pattern


def contact_sheet(input_pattern: str, output_pattern: str, frames: list[int], path: str,
                  columns: int = 6, thumb_width: int = 240) -> str:
    """A PNG of ``columns`` frames spread over the shot: input row above, render row below."""
    import numpy as np

    from focuspull.io.frames import SequencePattern
    from focuspull.io.images import read_image, write_image

    picks = [frames[round(i * (len(frames) - 1) / max(1, columns - 1))] for i in range(columns)]
    rows = []
    for pattern in (input_pattern, output_pattern):
        seq = SequencePattern(pattern)
        thumbs = [_thumbnail(read_image(seq.path(f)).rgba()[:, :, :3], thumb_width) for f in picks]
        gap = np.full((thumbs[0].shape[0], 4, 3), 0.02, np.float32)
        row = [thumbs[0]]
        for thumb in thumbs[1:]:
            row += [gap, thumb]
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate([rows[0], np.full((4, rows[0].shape[1], 3), 0.02, np.float32), rows[1]], axis=0)
    write_image(path, sheet)  # PNG: write_image encodes scene-linear to sRGB
    return path


def _thumbnail(rgb, width: int):
    """Area-average downscale to about ``width`` px wide (integer factor, no dependencies)."""
    import numpy as np

    factor = max(1, rgb.shape[1] // width)
    h, w = (rgb.shape[0] // factor) * factor, (rgb.shape[1] // factor) * factor
    small = rgb[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
    return small.astype(np.float32)


def run_demo(out_dir: str, frame_count: int = 48, width: int = 960, height: int = 540, *,
             device: str = "cpu", plane_spacing_px: float = DEMO_PLANE_SPACING_PX, on_event=None,
             log=print) -> dict:
    """Build the shot, render the rack focus with the real pipeline; return the paths written."""
    from focuspull.spec.job import RenderJob
    from focuspull.pipeline.run import run_job

    started = time.monotonic()
    out_dir = os.path.abspath(out_dir)
    log(f"focuspull demo: writing a {frame_count}-frame {width}x{height} shot with depth ...")
    input_pattern = write_input(out_dir, frame_count, width, height)
    last = FIRST_FRAME + frame_count - 1
    output_pattern = os.path.join(out_dir, "output", "demo_dof.####.exr")
    preview = os.path.join(out_dir, "output", "demo_dof.mp4")
    focus = focus_keys(FIRST_FRAME, last)
    job = RenderJob.from_dict({
        "input": {"pattern": input_pattern},
        "frames": list(range(FIRST_FRAME, last + 1)),
        "depth": {"kind": "channel", "channel": "Z", "depth_math": "depth"},
        "lens": {"mode": "physical", "focal_length_mm": FOCAL_LENGTH_MM, "fstop": FSTOP,
                 "sensor_width_mm": 36.0, "max_size_px": MAX_SIZE_PX},
        "focus": {"mode": "distance", "distance_m": focus},
        "aperture": {"blades": 7, "rotation_deg": 10.0, "roundness": 0.3},
        "output": {"pattern": output_pattern, "overwrite": True, "preview": preview, "preview_fps": 24.0},
        "device": device,
        "plane_spacing_px": plane_spacing_px,
    })
    log(f"focuspull demo: rendering a rack focus ({focus}) ...")
    result = run_job(job, on_event=on_event)
    sheet = contact_sheet(input_pattern, output_pattern, result.rendered,
                          os.path.join(out_dir, "contact_sheet.png"), thumb_width=max(16, width // 3))
    elapsed = time.monotonic() - started
    from focuspull.commands.render import command_line

    yours = job.replace(output=dataclasses.replace(job.output, pattern=os.path.join(out_dir, "output", "mine.####.exr"),
                                                   overwrite=False, preview=None), frames=())
    command = shlex.join(command_line(yours))
    log(f"focuspull demo: done in {elapsed:.0f} s\n"
        f"  input frames   {input_pattern}  (R,G,B + Z depth in metres)\n"
        f"  rendered       {output_pattern}\n"
        f"  preview movie  {preview}\n"
        f"  contact sheet  {sheet}  (top: input, bottom: render)\n"
        f"  try your own lens on it:\n    {command}")
    return {"input": input_pattern, "output": output_pattern, "preview": preview,
            "contact_sheet": sheet, "frames": result.rendered, "elapsed_s": elapsed}


def run(args: argparse.Namespace) -> int:
    from focuspull.errors import InputError
    from focuspull.pipeline.progress import ProgressLine

    if args.frames < 2 or args.width < 64 or args.height < 36:
        raise InputError(f"demo needs at least 2 frames of 64x36, got {args.frames} of {args.width}x{args.height}",
                         "use the defaults: focuspull demo")
    progress = None if args.quiet else ProgressLine()
    try:
        run_demo(args.out, args.frames, args.width, args.height, device=args.device,
                 plane_spacing_px=args.plane_spacing, on_event=progress,
                 log=lambda text: (progress.close() if progress else None, print(text), sys.stdout.flush()))
    finally:
        if progress is not None:
            progress.close()
    return 0
