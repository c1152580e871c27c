"""Relative depth: per-clip normalisation and the depth-estimator registry.

Pure numpy at import time; torch is imported only when a model estimator is built.

Conventions
-----------
* ``disparity`` arrays are ``H x W`` float32, near = large.
* Estimators return *relative* disparity: arbitrary scale and shift per model (and, in
  practice, per frame -- see :mod:`focuspull.stages.depth.stabilise`).
* Relative disparity is normalised to ``0..1`` (near = 1, the ``disparity_norm``
  convention of :mod:`focuspull.stages.lens`) **per clip, never per frame**: a per-frame
  normalisation would rescale every frame differently and make the bokeh breathe.
  The pipeline calls :func:`relative_range` once over the whole clip (a fixed pixel
  subsample of every frame, so the result does not depend on which chunk is being
  rendered), then :func:`normalise_relative` on each frame.

Estimators
----------
An estimator is any callable ``rgb (H x W x 3 float32, scene-linear) -> disparity
(H x W float32, near = large, arbitrary scale)``.  Factories ``factory(checkpoint_dir,
device) -> estimator`` are registered by name in the one model registry,
:data:`focuspull.stages.models.MODELS` (by import string; :func:`register_estimator` at run
time); :func:`get_estimator` builds a fresh instance, and the server keeps one per device in a
:class:`~focuspull.stages.models.ModelCache`.  ``"tiny"`` is :class:`TinyDepthNet`, a small
CNN used by tests and as the reference for the loading code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import numpy as np

from focuspull.errors import DepthError, InputError, ModelError
from focuspull.stages.models import model_names, register_model, resolve_factory

# --------------------------------------------------------------------------- clip range

#: Number of pixels sampled from every frame for the clip statistics.  The sample is a
#: fixed regular grid, so the same frame always contributes the same pixels.
RANGE_SAMPLES_PER_FRAME = 4096


@dataclass(frozen=True)
class ClipRange:
    """Robust disparity range of a whole clip (``low`` -> 0, ``high`` -> 1)."""

    low: float
    high: float

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high}


def sample_grid(shape: tuple[int, int], samples: int = RANGE_SAMPLES_PER_FRAME
                ) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a deterministic, regular ~``samples``-pixel grid.

    The grid depends only on ``shape`` (no randomness), so statistics computed on it are
    reproducible across runs and chunkings.  Returns two 1-D int arrays of equal length.
    """
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise InputError(f"cannot sample an empty image of shape {shape}",
                         "check the frame size of the depth")
    step = max(1, int(np.floor(np.sqrt(height * width / max(1, samples)))))
    ys = np.arange(step // 2, height, step)
    xs = np.arange(step // 2, width, step)
    rows, cols = np.meshgrid(ys, xs, indexing="ij")
    return rows.ravel(), cols.ravel()


class ClipNormaliser:
    """Accumulates a fixed pixel subsample of every frame, then gives the clip range.

    Usage: ``n = ClipNormaliser(); for d in frames: n.add(d)``, then
    ``n.clip_range()`` and ``n.normalise(d)``.  Frames can be added in any order; the
    pooled percentiles do not depend on it.
    """

    def __init__(self, low_percentile: float = 1.0, high_percentile: float = 99.0,
                 samples_per_frame: int = RANGE_SAMPLES_PER_FRAME) -> None:
        if not 0.0 <= low_percentile < high_percentile <= 100.0:
            raise InputError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {low_percentile}, "
                f"{high_percentile}", "use e.g. low_percentile=1, high_percentile=99")
        self.low_percentile = float(low_percentile)
        self.high_percentile = float(high_percentile)
        self.samples_per_frame = int(samples_per_frame)
        self._samples: list[np.ndarray] = []
        self._shape: tuple[int, int] | None = None
        self._range: ClipRange | None = None

    @property
    def frames_added(self) -> int:
        return len(self._samples)

    def add(self, disparity: np.ndarray) -> None:
        """Pool the sample grid of one ``H x W`` relative disparity frame."""
        disparity = _as_disparity(disparity)
        if self._shape is not None and disparity.shape != self._shape:
            raise DepthError(f"depth frames change size within the clip: {self._shape} "
                             f"then {disparity.shape}", "give every frame of a clip the same size")
        self._shape = disparity.shape
        rows, cols = sample_grid(disparity.shape, self.samples_per_frame)
        values = disparity[rows, cols]
        self._samples.append(values[np.isfinite(values)])
        self._range = None

    def clip_range(self) -> ClipRange:
        """The pooled ``low``/``high`` percentiles of everything added so far."""
        if self._range is None:
            pooled = np.concatenate(self._samples) if self._samples else np.empty(0)
            if pooled.size == 0:
                raise DepthError("no finite depth values to normalise (empty clip or all NaN)",
                                 "check that the depth source holds finite values")
            low, high = np.percentile(pooled.astype(np.float64),
                                      [self.low_percentile, self.high_percentile])
            self._range = ClipRange(float(low), float(high))
        return self._range

    def normalise(self, disparity: np.ndarray) -> np.ndarray:
        return normalise_relative(disparity, self.clip_range())


def relative_range(frames: Iterable[np.ndarray], *, low_percentile: float = 1.0,
                   high_percentile: float = 99.0,
                   samples_per_frame: int = RANGE_SAMPLES_PER_FRAME) -> ClipRange:
    """Robust range of a clip's relative disparity, pooled over **every** frame.

    Args:
        frames: iterable of ``H x W`` relative disparity (near = large), the whole clip
            (not just the chunk being rendered).
    Returns:
        :class:`ClipRange` of the ``low``/``high`` percentiles of a fixed pixel grid of
        every frame.
    """
    normaliser = ClipNormaliser(low_percentile, high_percentile, samples_per_frame)
    for frame in frames:
        normaliser.add(frame)
    return normaliser.clip_range()


def normalise_relative(disparity: np.ndarray, clip_range: ClipRange) -> np.ndarray:
    """Map relative disparity to ``0..1`` (near = 1) with the clip's range, clipped.

    A degenerate range (a flat clip) maps the clip's value to 0.5.
    Returns ``H x W`` float32.
    """
    disparity = _as_disparity(disparity)
    low, high = float(clip_range.low), float(clip_range.high)
    span = high - low
    if not span > 1e-12 * max(1.0, abs(high)):
        # Flat depth: everything is "the" plane; keep the ordering of any outliers.
        return np.where(disparity > high, 1.0,
                        np.where(disparity < low, 0.0, 0.5)).astype(np.float32)
    out = (disparity.astype(np.float64) - low) / span
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def normalise_relative_clip(frames: Iterable[np.ndarray], **range_kwargs
                            ) -> tuple[ClipRange, list[np.ndarray]]:
    """Whole-clip convenience for in-memory clips: ``(range, normalised frames)``."""
    frames = list(frames)
    clip_range = relative_range(frames, **range_kwargs)
    return clip_range, [normalise_relative(f, clip_range) for f in frames]


def _as_disparity(disparity: np.ndarray) -> np.ndarray:
    disparity = np.asarray(disparity, dtype=np.float32)
    if disparity.ndim != 2:
        raise DepthError(f"disparity must be H x W, got shape {disparity.shape}",
                         "pass a single depth channel")
    return disparity


# --------------------------------------------------------------------------- registry

class DepthEstimator(Protocol):
    """The function contract of a depth estimator."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb``: ``H x W x 3`` float32 scene-linear -> ``H x W`` float32 relative
        disparity, near = large, finite."""


EstimatorFactory = Callable[[str, str], DepthEstimator]

#: The one registry of depth estimators: name -> factory(checkpoint_dir, device).
def register_estimator(name: str, factory: EstimatorFactory) -> None:
    """Register ``factory(checkpoint_dir, device) -> estimator`` (or an import string) under
    ``name`` in the one model registry (:mod:`focuspull.stages.models`)."""
    register_model("depth", name, factory)


def estimator_names() -> tuple[str, ...]:
    return model_names("depth")


def get_estimator(name: str, checkpoint_dir: str, device: str = "cpu") -> DepthEstimator:
    """Build a fresh estimator ``name`` from the local ``checkpoint_dir`` on ``device``
    (the server keeps one per device in a :class:`~focuspull.stages.models.ModelCache`)."""
    return resolve_factory("depth", name)(checkpoint_dir, device)


# --------------------------------------------------------------------------- TinyDepthNet

TINY_CONFIG_NAME = "config.json"
TINY_WEIGHTS_NAME = "model.safetensors"
TINY_WEIGHTS_FALLBACK = "pytorch_model.pt"
TINY_MODEL_TYPE = "tiny_depth_net"
TINY_DEFAULT_CONFIG = {"model_type": TINY_MODEL_TYPE, "width": 16, "blocks": 2}

_tiny_class = None


def _tiny_depth_net_class():
    """Build the ``nn.Module`` subclass on first use, so that importing this module
    (and ``import focuspull``) never imports torch."""
    global _tiny_class
    if _tiny_class is not None:
        return _tiny_class
    import torch
    from torch import nn
    from torch.nn import functional as F

    class TinyDepthNet(nn.Module):
        """A small encoder-decoder CNN: scene-linear RGB -> relative disparity.

        ``config``: ``{"model_type": "tiny_depth_net", "width": int, "blocks": int}``.
        Input ``N x 3 x H x W`` (any H, W), output ``N x 1 x H x W`` (positive).
        """

        def __init__(self, config: dict | None = None) -> None:
            super().__init__()
            config = {**TINY_DEFAULT_CONFIG, **(config or {})}
            if config["model_type"] != TINY_MODEL_TYPE:
                raise ModelError(f"config is for {config['model_type']!r}, not {TINY_MODEL_TYPE!r}",
                                 "point to a TinyDepthNet checkpoint directory")
            self.config = config
            width, blocks = int(config["width"]), int(config["blocks"])
            self.stem = nn.Conv2d(3, width, 3, padding=1)
            self.down = nn.ModuleList(nn.Conv2d(width, width, 3, stride=2, padding=1)
                                      for _ in range(blocks))
            self.up = nn.ModuleList(nn.Conv2d(2 * width, width, 3, padding=1)
                                    for _ in range(blocks))
            self.head = nn.Conv2d(width, 1, 3, padding=1)

        def forward(self, rgb: "torch.Tensor") -> "torch.Tensor":
            # Scene-linear light spans decades: compress it so highlights don't dominate.
            x = torch.log1p(rgb.clamp(min=0.0))
            x = F.gelu(self.stem(x))
            skips = []
            for conv in self.down:
                skips.append(x)
                x = F.gelu(conv(x))
            for conv, skip in zip(self.up, reversed(skips)):
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = F.gelu(conv(torch.cat([x, skip], dim=1)))
            return F.softplus(self.head(x))

        def save_pretrained(self, directory: str) -> None:
            """Write ``config.json`` and the weights (safetensors when available)."""
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, TINY_CONFIG_NAME), "w", encoding="utf-8") as fh:
                json.dump(self.config, fh, indent=2, sort_keys=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            try:
                from safetensors.torch import save_file
            except ImportError:
                torch.save(state, os.path.join(directory, TINY_WEIGHTS_FALLBACK))
            else:
                save_file(state, os.path.join(directory, TINY_WEIGHTS_NAME))

        @classmethod
        def from_pretrained(cls, directory: str, device: str = "cpu") -> "TinyDepthNet":
            """Load from a local directory written by :meth:`save_pretrained` (never downloads)."""
            config = _read_tiny_config(directory)
            state = _read_tiny_weights(directory)
            model = cls(config)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ModelError(f"weights in {directory} do not match its config.json: "
                                 f"{str(exc).splitlines()[0]}",
                                 "re-export the checkpoint with TinyDepthNet.save_pretrained") from None
            return model.to(device).eval()

    _tiny_class = TinyDepthNet
    return _tiny_class


def _read_tiny_config(directory: str) -> dict:
    if not directory:
        raise ModelError("no checkpoint directory was given for the depth model",
                         "pass --depth-checkpoint with a local folder holding config.json and "
                         "the weights (nothing is downloaded)")
    if not os.path.isdir(directory):
        raise ModelError(f"depth model directory {directory!r} does not exist",
                         "pass --depth-checkpoint pointing to a local folder with config.json "
                         "and model weights (nothing is downloaded)")
    path = os.path.join(directory, TINY_CONFIG_NAME)
    if not os.path.isfile(path):
        raise ModelError(f"{path} is missing", "the checkpoint folder needs the config.json "
                         "written by save_pretrained next to the weights")
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "re-export the checkpoint") from None
    if not isinstance(config, dict) or config.get("model_type") != TINY_MODEL_TYPE:
        raise ModelError(f"{path} does not describe a {TINY_MODEL_TYPE}",
                         "point to a TinyDepthNet checkpoint, or pick the estimator that "
                         "matches this checkpoint")
    return config


def _read_tiny_weights(directory: str) -> dict:
    safetensors_path = os.path.join(directory, TINY_WEIGHTS_NAME)
    torch_path = os.path.join(directory, TINY_WEIGHTS_FALLBACK)
    if os.path.isfile(safetensors_path):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ModelError(f"{safetensors_path} needs the safetensors package",
                             "pip install safetensors") from None
        return load_file(safetensors_path)
    if os.path.isfile(torch_path):
        import torch
        # weights_only: a checkpoint must never execute code when loaded.
        return torch.load(torch_path, map_location="cpu", weights_only=True)
    raise ModelError(f"no weights in {directory} (expected {TINY_WEIGHTS_NAME} or "
                     f"{TINY_WEIGHTS_FALLBACK})", "copy the weights file next to config.json")


class TinyDepthEstimator:
    """Numpy-in, numpy-out wrapper of :class:`TinyDepthNet` (the estimator contract)."""

    def __init__(self, model, device: str = "cpu") -> None:
        self.model = model
        self.device = device

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        rgb = np.asarray(rgb, dtype=np.float32)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise InputError(f"depth estimation needs H x W x 3 RGB, got shape {rgb.shape}",
                             "pass the colour frame, not the depth or alpha")
        tensor = torch.from_numpy(np.ascontiguousarray(rgb[..., :3].transpose(2, 0, 1)))[None]
        with torch.no_grad():
            out = self.model(tensor.to(self.device))
        return out[0, 0].float().cpu().numpy().astype(np.float32)


def tiny_estimator(checkpoint_dir: str, device: str = "cpu") -> TinyDepthEstimator:
    """Factory registered as ``"tiny"`` in :data:`focuspull.stages.models.MODELS`."""
    model = _tiny_depth_net_class().from_pretrained(checkpoint_dir, device=device)
    return TinyDepthEstimator(model, device)


def __getattr__(name: str):
    # ``from focuspull.stages.depth.sources import TinyDepthNet`` works, but torch loads only then.
    if name == "TinyDepthNet":
        return _tiny_depth_net_class()
    raise AttributeError(f"module 'focuspull.stages.depth.sources' has no attribute {name!r}")
