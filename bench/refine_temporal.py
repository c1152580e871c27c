"""Temporal change error of the refiner vs the classical render, on ray-traced validation clips.

    .venv/bin/python bench/refine_temporal.py [--model models/refiner-small] [--clips 4] [--frames 8]

Clips are the training generator's *validation* seeds (never trained on): moving layers and
focus pulls, thin-lens truth.  Temporal change error = mean |(out_t - out_t-1) - (truth_t -
truth_t-1)| over display-referred frames: frame-to-frame change the truth does not have (or
lacks).  Also prints PSNR against the truth.  Lower change error is steadier.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import metrics  # noqa: E402


def change_error(frames: np.ndarray, truth: np.ndarray) -> float:
    a, b = metrics.display_referred(frames), metrics.display_referred(truth)
    return float(np.abs(np.diff(a, axis=0) - np.diff(b, axis=0)).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=BENCH_DIR.parent / "models" / "refiner-small")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=96)
    args = p.parse_args(argv)
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415
    from focuspull.stages.refine.training.scenes import VALIDATION_SEED0, make_clip  # noqa: PLC0415

    pipe = load_refiner(args.model)
    rows = []
    for i in range(args.clips):
        clip = make_clip(VALIDATION_SEED0 + 500 + i, args.frames, args.size)
        refined = pipe(clip.all_in_focus, clip.coc_px, clip.classical).frames
        rows.append((change_error(clip.classical, clip.truth), change_error(refined, clip.truth),
                     np.mean([metrics.psnr(c, t) for c, t in zip(clip.classical, clip.truth)]),
                     np.mean([metrics.psnr(r, t) for r, t in zip(refined, clip.truth)])))
        print(f"clip {i}: change error classical {rows[-1][0]:.5f} refined {rows[-1][1]:.5f}; "
              f"PSNR classical {rows[-1][2]:.2f} refined {rows[-1][3]:.2f} dB", flush=True)
    m = np.mean(rows, axis=0)
    print(f"mean: change error classical {m[0]:.5f} refined {m[1]:.5f}; PSNR classical {m[2]:.2f} refined {m[3]:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
