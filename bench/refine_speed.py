"""Refiner speed and memory: seconds per frame at 1080p, peak RAM, on this machine.

    .venv/bin/python bench/refine_speed.py [--model models/refiner-small] [--width 1920 --height 1080]
                                           [--frames 8] [--memory-width 3840 --memory-height 2160]
                                           [--precision auto|fp32|bf16] [--time-batches N]

Times one temporal window of ``--frames`` frames (the model's window) of the demo shot, inputs
given (the classical render is not timed: bench/speed.py measures it).  In a long clip every
frame is in ``window / (window - overlap)`` windows, so the steady-state cost per frame is the
window's time divided by the window stride; both figures are printed.  Peak RAM is the peak
RSS of a child process refining one window at ``--memory-*`` size (0 = skip).  The child
stops after ``--memory-batches`` tile batches (0 = the whole window): every window-sized
buffer (the caller's inputs, the pipeline's one input buffer, the correction) is allocated
and written before the first batch and each batch's activations are freed before the next,
so the peak is reached in the first batches; the whole 4K window would take most of an
hour on a 2-core CPU for the same figure.  ``--time-batches N`` times the first N tile batches
of the window (after one untimed batch) and scales by the batch count, printed as such.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = BENCH_DIR.parent / "models" / "refiner-small"


def window_inputs(width: int, height: int, frames: int):
    from focuspull.commands.demo_scene import DemoScene  # noqa: PLC0415
    from focuspull.stages.lens import ThinLens, coc_from_depth  # noqa: PLC0415

    demo = DemoScene(width, height, 48)
    lens = ThinLens(50.0, 2.0, 36.0, focus_distance_m=4.5)
    aif, coc = [], []
    for t in range(frames):
        f = demo.frame(20 + t)
        aif.append(np.ascontiguousarray(f.rgb, np.float32))
        depth = f.depth_m
        coc.append(np.clip(coc_from_depth(depth, lens, "depth"), -32, 32).astype(np.float32))
    aif, coc = np.stack(aif), np.stack(coc)
    return aif, coc, aif.copy()  # the classical render's values do not change the network's cost


class _Enough(Exception):
    pass


def run_window(model: Path, width: int, height: int, frames: int, max_batches: int = 0,
               precision: str = "auto") -> tuple[float, int]:
    """Seconds to refine one window (or its first ``max_batches`` tile batches), and the number
    of tile batches run."""
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415

    pipe = load_refiner(model, precision=precision)
    aif, coc, classical = window_inputs(width, height, frames)
    forward, calls = pipe.model.forward, [0]

    def counted(*args, **kwargs):
        if max_batches and calls[0] >= max_batches:
            raise _Enough
        calls[0] += 1
        return forward(*args, **kwargs)

    pipe.model.forward = counted
    start = time.perf_counter()
    try:
        pipe.window_correction(aif, coc, classical)
    except _Enough:
        pass
    finally:
        pipe.model.forward = forward
    return time.perf_counter() - start, calls[0]


def _window_batches(model: Path, width: int, height: int, precision: str) -> int:
    """Tile batches of a whole window, counted without running the network."""
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415
    from focuspull.stages.refine.tiling import piece_weights  # noqa: PLC0415

    pipe = load_refiner(model, precision=precision)
    cfg = pipe.config
    h, w = max(height, cfg.tile_size), max(width, cfg.tile_size)
    tiles = len(piece_weights(h, cfg.tile_size, cfg.tile_overlap)) * len(piece_weights(w, cfg.tile_size, cfg.tile_overlap))
    return -(-tiles // pipe.tiles_per_batch)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--frames", type=int, default=None, help="window length (default: the model's)")
    p.add_argument("--memory-width", type=int, default=3840)
    p.add_argument("--memory-height", type=int, default=2160)
    p.add_argument("--memory-batches", type=int, default=4, help="tile batches the memory child runs (0 = all)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="the network's number format (job field refine.precision)")
    p.add_argument("--time-batches", type=int, default=0,
                   help="time only this many tile batches (after one untimed) and scale to the window")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415

    cfg = load_refiner(args.model).config
    frames = args.frames or cfg.window
    if args.child:
        seconds, batches = run_window(args.model, args.width, args.height, frames, args.memory_batches,
                                      args.precision)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "batches": batches}))
        return 0
    if args.time_batches:
        run_window(args.model, args.width, args.height, frames, 1, args.precision)  # untimed: warm-up
        seconds, timed = run_window(args.model, args.width, args.height, frames, args.time_batches, args.precision)
        batches = _window_batches(args.model, args.width, args.height, args.precision)
        print(f"timed {timed} of {batches} tile batches: {seconds / timed:.2f} s per batch, scaled to the window")
        seconds = seconds / timed * batches
    else:
        seconds, batches = run_window(args.model, args.width, args.height, frames, 0, args.precision)
    stride = max(1, cfg.window - cfg.window_overlap) if frames == cfg.window else frames
    print(f"{args.width}x{args.height}, window of {frames} frames: {seconds:.1f} s "
          f"= {seconds / frames:.2f} s per frame of the window, {seconds / stride:.2f} s/frame steady state "
          f"(windows every {stride} frames), {batches} tile batches, {args.precision} precision, "
          f"torch threads {__import__('torch').get_num_threads()}")
    if args.memory_width:
        out = subprocess.run([sys.executable, __file__, "--child", "--model", str(args.model),
                              "--width", str(args.memory_width), "--height", str(args.memory_height),
                              "--frames", str(frames), "--memory-batches", str(args.memory_batches),
                              "--precision", args.precision],
                             capture_output=True, text=True, env=os.environ)
        if out.returncode:
            print(out.stderr[-2000:])
            return 1
        child = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{args.memory_width}x{args.memory_height}, window of {frames}: peak RSS "
              f"{child['peak_rss_mb']:.0f} MB ({child['batches']} tile batches run, {child['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
