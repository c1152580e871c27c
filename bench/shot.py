"""Seconds per frame of the whole `focuspull render` command at 1080p.

    .venv/bin/python bench/shot.py [--frames 8] [--repeats 3]

Writes a short 1920x1080 clip of the demo shot (RGB + Z, half-float EXR) to a temporary
folder, then times `focuspull render` on it end to end in a subprocess (start-up, EXR
read, depth -> CoC, render, atomic EXR write), `--repeats` times with `--overwrite`.
Beside it, the bare renderer (`render_coc` on the same frames, in this process) so the
pipeline's own cost is visible.  Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from focuspull.commands.demo_scene import DemoScene
from focuspull.io import write_image
from focuspull.stages.lens import ThinLens, coc_from_depth
from focuspull.stages.render.layered import render_coc

LENS = dict(focal_length_mm=50.0, fstop=1.4, sensor_width_mm=36.0, focus_distance_m=4.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    shot = DemoScene(1920, 1080, args.frames)
    tmp = tempfile.mkdtemp(prefix="focuspull_bench_")
    try:
        frames = [shot.frame(i) for i in range(args.frames)]
        for i, fr in enumerate(frames):
            write_image(os.path.join(tmp, f"in.{1001 + i:04d}.exr"), np.dstack([fr.rgb, fr.depth_m]),
                        channel_names=["R", "G", "B", "Z"])
        cmd = [sys.executable, "-m", "focuspull", "render", os.path.join(tmp, "in.####.exr"),
               os.path.join(tmp, "out.####.exr"), "--focal-length", str(LENS["focal_length_mm"]),
               "--fstop", str(LENS["fstop"]), "--sensor-width", str(LENS["sensor_width_mm"]),
               "--focus-distance", str(LENS["focus_distance_m"]), "--max-size", "32",
               "--overwrite", "--quiet"]
        cli = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            cli.append((time.perf_counter() - start) / args.frames)

        lens = ThinLens(**LENS)
        cocs = [coc_from_depth(fr.depth_m, lens, max_radius_px=32.0) for fr in frames]
        render_coc(frames[0].rgb[:256, :256], cocs[0][:256, :256])  # warm-up
        bare = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for fr, coc in zip(frames, cocs):
                render_coc(fr.rgb, coc)
            bare.append((time.perf_counter() - start) / args.frames)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med_cli, med_bare = statistics.median(cli), statistics.median(bare)
    print(f"{args.frames} frames 1920x1080, 50 mm f/1.4 focus 4.5 m, max size 32 px, {os.cpu_count()} cores\n")
    print("| what | runs | median s/frame |")
    print("|---|---|---|")
    print(f"| `focuspull render` (EXR in -> EXR out, whole command) | {args.repeats} | {med_cli:.3f} |")
    print(f"| `render_coc` alone, same frames | {args.repeats} | {med_bare:.3f} |")
    print(f"\npipeline overhead (start-up, EXR read/write, depth -> CoC): {med_cli - med_bare:+.3f} s/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
