"""Refiner vs classical render on a folder of Cycles scenes (model selection on the validation split).

    PYTHONPATH=server .venv/bin/python bench/refine_cycles_val.py --model models/refiner-small \
        --scenes /work/data/cycles-val [--limit 20] [--out bench/out/val] [--scales 0.5,0.75,1]

The folder is one written by ``bench/cycles/make_training_scenes.py`` (seeds >= 1000000 for the
validation split); never point it at ``bench/scenes`` for choosing a model: those four scenes
are the benchmark.  Each scene is refined whole (tiles, a 1-frame clip) exactly as
``bench/quality.py --refine`` does, and scored with the same display-referred PSNR.

``--scales`` scores several ``correction_scale`` values from one forward pass per scene: the
correction is computed at scale 1 and multiplied by each scale (the model multiplies its output
by ``correction_scale``, and a 1-frame clip is one window of weight 1, so this is what the
pipeline gives with that scale in ``config.json``; the model's own scale is checked against the
pipeline on the first scene).
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
    p.add_argument("--scales", default="", metavar="S,S,...",
                   help="also score these correction_scale values (comma-separated; default: the model's own)")
    args = p.parse_args(argv)
    from focuspull.stages.refine import load_refiner  # noqa: PLC0415
    from focuspull.stages.refine.pipeline import apply_correction  # noqa: PLC0415
    from focuspull.stages.refine.training.cycles import load_scene, scene_folders  # noqa: PLC0415

    pipe = load_refiner(args.model)
    own = float(pipe.config.correction_scale)
    scales = [float(v) for v in args.scales.split(",") if v.strip()] or [own]
    folders = scene_folders(args.scenes)
    gains = {sc: [] for sc in scales}
    for n, folder in enumerate(folders[:args.limit] if args.limit else folders):
        s = load_scene(folder)
        pipe.model.register_to_config(correction_scale=1.0)
        unit = pipe.window_correction(s.aif[None], s.coc_px[None], s.classical[None])[0]
        pipe.model.register_to_config(correction_scale=own)
        if n == 0:  # the shortcut is the pipeline: check it once at the model's own scale
            direct = pipe(s.aif[None], s.coc_px[None], s.classical[None]).frames[0]
            via = apply_correction(s.classical, unit * own)
            if not np.allclose(direct, via, rtol=1e-4, atol=1e-5):
                raise SystemExit(f"scaled correction differs from the pipeline by {np.abs(direct - via).max()}")
        before = metrics.psnr(s.classical, s.truth)
        line = f"{folder.name}: K {s.strength_px:5.1f} px  classical {before:6.2f} dB"
        for sc in scales:
            refined = apply_correction(s.classical, unit * sc)
            after = metrics.psnr(refined, s.truth)
            gains[sc].append(after - before)
            line += f"  x{sc:g} {after:6.2f} dB ({after - before:+.3f})"
            if args.out is not None and sc == scales[0]:
                import quality  # noqa: PLC0415  (bench/quality.py: the strip writer)

                quality.write_strip(args.out / f"{folder.name}.png", [("input", s.aif), ("Cycles", s.truth),
                                                                       ("focuspull", s.classical), ("+ refine", refined)])
        print(line, flush=True)
    for sc in scales:
        g = gains[sc]
        print(f"correction_scale {sc:g}: mean {np.mean(g):+.3f} dB, worst {min(g):+.3f} dB, best {max(g):+.3f} dB "
              f"over {len(g)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
