"""Refiner vs classical render on a folder of Cycles scenes (model selection on the validation split).

    PYTHONPATH=server .venv/bin/python bench/refine_cycles_val.py --model models/refiner-small \
        --scenes /work/data/cycles-val [--limit 20] [--out bench/out/val]

The folder is one written by ``bench/cycles/make_training_scenes.py`` (seeds >= 1000000 for the
validation split); never point it at ``bench/scenes`` for choosing a model: those four scenes
are the benchmark.  Each scene is refined whole (tiles, a 1-frame clip) exactly as
``bench/quality.py --refine`` does, and scored with the same display-referred PSNR.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import metrics  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--scenes", type=Path, required=True)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write input | truth | classical | refined strips here")
    args = p.parse_args(argv)
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415
    from focuspull.stages.refine.training.cycles import load_scene, scene_folders  # noqa: PLC0415

    pipe = load_refiner(args.model)
    folders = scene_folders(args.scenes)
    gains = []
    for folder in folders[:args.limit] if args.limit else folders:
        s = load_scene(folder)
        refined = pipe(s.aif[None], s.coc_px[None], s.classical[None]).frames[0]
        before, after = metrics.psnr(s.classical, s.truth), metrics.psnr(refined, s.truth)
        gains.append(after - before)
        print(f"{folder.name}: K {s.strength_px:5.1f} px  classical {before:6.2f} dB  refined {after:6.2f} dB  "
              f"({after - before:+.3f})", flush=True)
        if args.out is not None:
            import quality  # noqa: PLC0415  (bench/quality.py: the strip writer)

            quality.write_strip(args.out / f"{folder.name}.png", [("input", s.aif), ("Cycles", s.truth),
                                                                   ("focuspull", s.classical), ("+ refine", refined)])
    print(f"mean {np.mean(gains):+.3f} dB, worst {min(gains):+.3f} dB, best {max(gains):+.3f} dB over {len(gains)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
