"""The learned refiner: a one-step, MPI-conditioned video model that corrects the classical render.

``all-in-focus + signed CoC + MPI band masks + strength K + classical render -> refined``.
Modules: :mod:`.conditioning` (tone space, bands), :mod:`.model` (the network),
:mod:`.tiling` (tiles and temporal windows), :mod:`.pipeline` (the diffusers-shaped
pipeline), :mod:`.clip` (frame-at-a-time driver for the render pipeline),
:mod:`.training` (ray-traced ground truth, three stages).  docs/refine.md has the design.

Models are loaded once per (folder, device) and kept (:func:`load_refiner`), so a server
worker pays for loading once.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


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
