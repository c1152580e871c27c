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


#: Job field ``refine.precision`` -> the registered refine model that runs it (the per-device
#: model cache keys on the name, so each precision is loaded once and kept).
MODEL_BY_PRECISION = {"auto": "onestep", "fp32": "onestep-fp32", "bf16": "onestep-bf16"}


def refiner_factory(checkpoint_dir: str, device: str, precision: str = "auto"):
    """Model-registry factory: the pipeline in ``checkpoint_dir`` on ``device`` (no download),
    in ``precision`` (``auto``: fp16 on CUDA, fp32 on the CPU)."""
    import torch  # noqa: PLC0415

    from focuspull.stages.refine.pipeline import RefinerPipeline  # noqa: PLC0415 - torch, diffusers

    dtype = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    return RefinerPipeline.from_pretrained(checkpoint_dir, device, dtype)


def refiner_factory_fp32(checkpoint_dir: str, device: str):
    return refiner_factory(checkpoint_dir, device, "fp32")


def refiner_factory_bf16(checkpoint_dir: str, device: str):
    return refiner_factory(checkpoint_dir, device, "bf16")


def load_refiner(model_dir: str | os.PathLike, device: str = "cpu", precision: str = "auto"):
    """The :class:`~focuspull.stages.refine.pipeline.RefinerPipeline` in ``model_dir`` on ``device``
    in ``precision`` (:data:`MODEL_BY_PRECISION`), cached."""
    folder = Path(model_dir).resolve()
    weights = folder / "diffusion_pytorch_model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    return _load(str(folder), stamp, str(device), precision)


@lru_cache(maxsize=4)
def _load(folder: str, stamp: int, device: str, precision: str):
    return refiner_factory(folder, device, precision)


def refiner_reach(model_dir: str | os.PathLike) -> int:
    """Clip frames on each side of a frame that its refinement reads (``window - 1``), from the
    model's config.json without loading it; 0 when there is no readable config (loading the
    model then reports what is wrong)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return max(0, int(config.get("window", 8)) - 1)
    except (OSError, ValueError, TypeError):
        return 0
