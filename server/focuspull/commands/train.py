"""``focuspull train --stage 1|2|3 --out DIR``: train the refiner on ray-traced layered clips.

Each stage is its own run (see :mod:`focuspull.stages.refine.training.loop`): stage 1 trains
the whole model on 4-frame clips, stage 2 the temporal layers on 8-frame windows with
perturbed depth, stage 3 the decoder with L1 + Sobel.  A stage resumes from its checkpoint
when run again with the same ``--out``; the exported model in ``--out`` is what
``focuspull render --refine DIR`` loads.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "train the learned refiner (three stages, on the CPU or a GPU)"

EPILOG = """examples (the shipped models/refiner-small, see its MODEL_CARD.md):
  focuspull train --stage 1 --out models/refiner-small --steps 1200
  focuspull train --stage 2 --out models/refiner-small --steps 200
  focuspull train --stage 3 --out models/refiner-small --steps 300
run a stage again with the same --out to resume it from its checkpoint."""


# Bounds of --grow-context: a refiner that stays a few MB (one level of 128 adds ~2.2 MB).
MAX_CONTEXT_LEVELS = 3
MAX_CONTEXT_WIDTH = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), required=True,
                        help="1: whole model, 4-frame clips; 2: temporal layers, 8-frame windows, "
                             "perturbed depth; 3: decoder, L1 + Sobel")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="model folder: checkpoints in DIR/stageN, the exported model in DIR")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps of this stage")
    parser.add_argument("--clips-per-step", type=int, default=2, help="clips in each batch")
    parser.add_argument("--size", type=int, default=64, help="training frame size in px (square)")
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (AdamW, cosine decay)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training clips")
    parser.add_argument("--val-every", type=int, default=100, help="validate every N steps")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="write the resumable checkpoint every N steps")
    parser.add_argument("--val-clips", type=int, default=8, help="clips in the validation split")
    parser.add_argument("--aperture-samples", type=int, default=96,
                        help="rays per pixel of the ground-truth ray tracer")
    parser.add_argument("--max-coc", type=float, default=14.0, metavar="PX",
                        help="largest CoC radius of the generated clips (must stay under half the frame diagonal)")
    parser.add_argument("--train-pool", type=int, default=0, metavar="N",
                        help="0: a fresh ray-traced clip per sample; N: cycle over N clips made once")
    parser.add_argument("--display-weight", type=float, default=0.0, metavar="W",
                        help="add W x the benchmark's display-referred error (L1 + RMSE of clip(x,0,1)^(1/2.2)) "
                             "to the tone-space L1")
    parser.add_argument("--cycles-data", type=Path, default=None, metavar="DIR",
                        help="Cycles training scenes (bench/cycles/make_training_scenes.py); stages 1 and 3 "
                             "train on crops of them (1-frame clips of --size)")
    parser.add_argument("--cycles-val", type=Path, default=None, metavar="DIR",
                        help="Cycles validation scenes (a disjoint folder): replaces the ray-traced validation split "
                             "in stages 1 and 3")
    parser.add_argument("--cycles-fraction", type=float, default=1.0, metavar="F",
                        help="fraction of the steps of stages 1 and 3 on Cycles crops; the rest on ray-traced clips")
    parser.add_argument("--cycles-limit", type=int, default=0, metavar="N",
                        help="use only the first N scenes (sorted by name) of --cycles-data (0 = all)")
    parser.add_argument("--hidden-emitters", type=float, default=0.0, metavar="F",
                        help="share of the ray-traced training clips that hide HDR emitters behind the outline "
                             "of an in-focus layer (0..1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model-config", metavar="JSON", default="{}",
                        help='stage 1 only, new model: e.g. \'{"block_channels": [32, 64]}\'')
    parser.add_argument("--grow-context", metavar="C[,C]", default="",
                        help="stage 1 only: add context levels of these widths below the model's bottleneck "
                             "(zero-initialised, so it starts from the model's exact output), e.g. 128")


def run(args: argparse.Namespace) -> int:
    from focuspull.errors import InputError

    try:
        model_config = json.loads(args.model_config)
    except json.JSONDecodeError as exc:
        raise InputError(f"--model-config is not JSON: {exc}", "pass e.g. '{\"block_channels\": [16, 32]}'") from None
    try:
        grow = tuple(int(c) for c in args.grow_context.split(",") if c.strip())
    except ValueError:
        raise InputError(f"--grow-context must be comma-separated widths, got {args.grow_context!r}",
                         "pass e.g. --grow-context 128") from None
    if grow and args.stage != 1:
        raise InputError("--grow-context applies to stage 1 only", "grow the model in stage 1")
    if len(grow) > MAX_CONTEXT_LEVELS or any(not 8 <= c <= MAX_CONTEXT_WIDTH or c % 8 for c in grow):
        raise InputError(f"--grow-context takes 1 to {MAX_CONTEXT_LEVELS} widths, each a multiple of 8 from 8 to "
                         f"{MAX_CONTEXT_WIDTH}, got {args.grow_context[:40]!r}", "pass e.g. --grow-context 128")
    if args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}", "pass e.g. --steps 1000")
    if not 0.0 <= args.cycles_fraction <= 1.0:
        raise InputError(f"--cycles-fraction must be in 0..1, got {args.cycles_fraction}", "pass e.g. --cycles-fraction 0.9")
    if not 0.0 <= args.hidden_emitters <= 1.0:
        raise InputError(f"--hidden-emitters must be in 0..1, got {args.hidden_emitters}", "pass e.g. --hidden-emitters 0.5")
    if args.cycles_val is not None and args.cycles_data is None:
        raise InputError("--cycles-val needs --cycles-data", "pass the training scenes with --cycles-data DIR")
    from focuspull.stages.refine.training.loop import TrainConfig, train_stage  # torch, diffusers

    cfg = TrainConfig(out=args.out, stage=args.stage, steps=args.steps, clips_per_step=args.clips_per_step,
                      size=args.size, lr=args.lr, seed=args.seed, val_every=args.val_every,
                      val_clips=args.val_clips, checkpoint_every=args.checkpoint_every, aperture_samples=args.aperture_samples, device=args.device,
                      max_coc_px=args.max_coc, train_pool=args.train_pool,
                      model_config=model_config, grow_context=grow, display_weight=args.display_weight,
                      cycles_data=args.cycles_data, cycles_val=args.cycles_val,
                      cycles_fraction=args.cycles_fraction, cycles_limit=args.cycles_limit,
                      hidden_fraction=args.hidden_emitters)
    result = train_stage(cfg, log=lambda line: print(line, flush=True))
    print(f"stage {args.stage}: validation loss {result['first_val']:.5f} -> {result['last_val']:.5f}, "
          f"display-referred MSE {result['first_val_display_mse']:.6f} -> {result['last_val_display_mse']:.6f} "
          f"in {result['steps']} steps ({result['seconds']:.0f} s); model in {args.out}", flush=True)
    return 0
