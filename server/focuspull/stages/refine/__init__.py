"""The learned refiner: a one-step, MPI-conditioned video model that corrects the classical render.

``all-in-focus + signed CoC + MPI band masks + strength K + classical render -> refined``.
Modules: :mod:`.conditioning` (tone space, bands), :mod:`.model` (the network),
:mod:`.tiling` (tiles and temporal windows), :mod:`.pipeline` (the diffusers-shaped
pipeline), :mod:`.clip` (frame-at-a-time driver for the render pipeline),
:mod:`.training` (ray-traced ground truth, three stages).  docs/refine.md has the design.

Registered in :data:`focuspull.stages.models.MODELS` as refine model ``onestep``
(:func:`refiner_factory`), so the server's per-device model cache loads it once and keeps it;
:func:`load_refiner` is the same with a small process-wide cache (benchmarks, notebooks).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path


def refiner_factory(checkpoint_dir: str, device: str):
    """Model-registry factory: the pipeline in ``checkpoint_dir`` on ``device`` (no download)."""
    from focuspull.stages.refine.pipeline import RefinerPipeline  # noqa: PLC0415 - torch, diffusers

    return RefinerPipeline.from_pretrained(checkpoint_dir, device)


def load_refiner(model_dir: str | os.PathLike, device: str = "cpu"):
    """The :class:`~focuspull.stages.refine.pipeline.RefinerPipeline` in ``model_dir`` on ``device``, cached."""
    folder = Path(model_dir).resolve()
    weights = folder / "diffusion_pytorch_model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    return _load(str(folder), stamp, str(device))


@lru_cache(maxsize=4)
def _load(folder: str, stamp: int, device: str):
    from focuspull.stages.refine.pipeline import RefinerPipeline  # noqa: PLC0415 - torch, diffusers

    return RefinerPipeline.from_pretrained(folder, device)


def refiner_reach(model_dir: str | os.PathLike) -> int:
    """Clip frames on each side of a frame that its refinement reads (``window - 1``), from the
    model's config.json without loading it; 0 when there is no readable config (loading the
    model then reports what is wrong)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return max(0, int(config.get("window", 8)) - 1)
    except (OSError, ValueError, TypeError):
        return 0
