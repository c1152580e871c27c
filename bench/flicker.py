"""The flicker figure: how much temporal depth stabilisation steadies the render.

    .venv/bin/python bench/flicker.py [--frames 24] [--width 960]

Takes the demo shot's exact depth, then gives every frame's disparity the kind of error a
per-frame depth estimator makes: a scale error (1 +- 5 %), a shift (+- 0.02 1/m) and
pixel noise (sigma 0.005).  Each frame is rendered from clean, jittered and jittered +
stabilised depth (`focuspull.stages.depth.stabilise.DepthStabiliser`, window 2).  Flicker is
mean |(out_t - out_t-1) - (ref_t - ref_t-1)| against the render from clean depth, i.e.
frame-to-frame change that the clean shot does not have.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from focuspull.commands.demo_scene import DemoScene
from focuspull.stages.lens import ThinLens, coc_from_disparity
from focuspull.stages.render.layered import render_coc
from focuspull.stages.depth.stabilise import DepthStabiliser


def flicker(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    diffs = [np.abs((o1 - o0) - (r1 - r0)).mean()
             for o0, o1, r0, r1 in zip(outputs, outputs[1:], reference, reference[1:])]
    return float(np.mean(diffs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--window", type=int, default=2)
    args = parser.parse_args()
    height = args.width * 9 // 16
    shot = DemoScene(args.width, height, args.frames)
    frames = [shot.frame(i) for i in range(args.frames)]
    clean = [1.0 / f.depth_m for f in frames]
    rng = np.random.default_rng(7)
    jittered = [(d * (1 + rng.uniform(-0.05, 0.05)) + rng.uniform(-0.02, 0.02)
                 + rng.normal(0, 0.005, d.shape)).astype(np.float32) for d in clean]
    stabiliser = DepthStabiliser(lambda i: jittered[i], 0, args.frames - 1, args.window)
    stabilised = [stabiliser.frame(t) for t in range(args.frames)]

    lens = ThinLens(50.0, 1.4, 36.0, 4.5)
    k = lens.k_px(args.width)

    def render(disparities):
        return [render_coc(f.rgb, coc_from_disparity(d, lens.focus_disparity, k, 24.0))
                for f, d in zip(frames, disparities)]

    reference = render(clean)
    raw, steady = render(jittered), render(stabilised)
    f_raw, f_steady = flicker(raw, reference), flicker(steady, reference)
    d_raw, d_steady = flicker(jittered, clean), flicker(stabilised, clean)
    print(f"demo shot {args.width}x{height}, {args.frames} frames, stabilise window {args.window}\n")
    print("| depth given to the renderer | render flicker | depth flicker |")
    print("|---|---|---|")
    print(f"| jittered (per-frame scale/shift + noise) | {f_raw:.5f} | {d_raw:.5f} |")
    print(f"| jittered + stabilised | {f_steady:.5f} | {d_steady:.5f} |")
    print(f"| ratio | {f_raw / f_steady:.1f}x | {d_raw / d_steady:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
