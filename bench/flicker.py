"""The flicker figures: how much depth stabilisation steadies the render, on a static and a
moving shot.

    .venv/bin/python bench/flicker.py [--frames 16] [--width 640] [--window 3] [--json out.json]

Shots (``bench/moving_shot.py``): a **moving** one -- the camera dollies sideways, the near
pillar slides ``--near-speed`` x 0.85 px per frame (11 px by default), a fence, a slanted
wall, a box and a ball moving on its own -- and the same set-up **static** (locked-off
camera, nothing moving).  Every frame's clean disparity gets what a per-frame monocular
estimator gives it (``moving_shot.jitter``): its own scale (1 +- 8 %) and shift (+- 0.03),
a smooth low-frequency error field (~0.03) and pixel noise (sigma 0.005).

Each frame is rendered (``render_coc``, CoC = k (0.45 - d), k = 14 px per 192 px of width)
from clean depth (the reference), jittered depth, jittered depth stabilised *in place*
(what ``--stabilise`` did before: no motion compensation) and jittered depth stabilised
with motion compensation (``DepthStabiliser(get_image=...)``, what ``--stabilise`` does
now).  Flicker = mean |(out_t - out_t-1) - (ref_t - ref_t-1)|; PSNR over the clip, both
against the clean-depth render.  Prints Markdown for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moving_shot import flicker, jitter, moving_shot, psnr, static_shot  # noqa: E402

from focuspull.stages.depth.stabilise import DepthStabiliser  # noqa: E402
from focuspull.stages.render.layered import render_coc  # noqa: E402


def stabilise(raw, rgbs, window, motion):
    stabiliser = DepthStabiliser(lambda i: raw[i], 0, len(raw) - 1, window,
                                 get_image=(lambda i: rgbs[i]) if motion else None)
    start = time.perf_counter()
    out = [stabiliser.frame(t) for t in range(len(raw))]
    return out, (time.perf_counter() - start) / len(raw)


def measure(name, rgbs, clean, window, seed):
    width = rgbs[0].shape[1]
    k_px, focus = 14.0 * width / 192, 0.45

    def render(disparities):
        return [render_coc(rgb, (k_px * (focus - d)).astype(np.float32)) for rgb, d in zip(rgbs, disparities)]

    raw = jitter(clean, seed=seed)
    in_place, t_in_place = stabilise(raw, rgbs, window, motion=False)
    motion, t_motion = stabilise(raw, rgbs, window, motion=True)
    reference = render(clean)
    rows = []
    for label, disparities, seconds in (("jittered, `--stabilise 0`", raw, 0.0),
                                        (f"in place (no motion compensation), window {window}", in_place, t_in_place),
                                        (f"motion-compensated, window {window}", motion, t_motion)):
        out = render(disparities)
        rows.append({"shot": name, "depth": label, "render_flicker": flicker(out, reference),
                     "psnr_db": psnr(out, reference), "depth_flicker": flicker(disparities, clean),
                     "stabilise_s_per_frame": seconds})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--near-speed", type=float, default=13.0,
                        help="camera travel in px per frame at disparity 1 (the pillar is at ~0.85)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    height = args.width * 9 // 16
    rows = []
    rows += measure("moving", *moving_shot(args.frames, height, args.width, args.near_speed), args.window, args.seed)
    rows += measure("static", *static_shot(args.frames, height, args.width), args.window, args.seed)
    print(f"{args.width}x{height}, {args.frames} frames, camera {args.near_speed:g} px/frame at disparity 1, "
          f"{os.cpu_count()} cores\n")
    print("| shot | depth given to the renderer | render flicker | PSNR vs clean-depth render | depth flicker "
          "| stabilise s/frame |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shot']} | {r['depth']} | {r['render_flicker']:.5f} | {r['psnr_db']:.2f} dB | "
              f"{r['depth_flicker']:.5f} | {r['stabilise_s_per_frame']:.3f} |")
    for shot in ("moving", "static"):
        raw, _, new = [r for r in rows if r["shot"] == shot]
        print(f"\n{shot}: motion-compensated render flicker {raw['render_flicker'] / new['render_flicker']:.2f}x "
              f"lower than no stabilisation, PSNR {new['psnr_db'] - raw['psnr_db']:+.2f} dB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
