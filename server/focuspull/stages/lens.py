"""Lens model: depth conventions -> disparity -> signed circle of confusion (CoC) in pixels.

Pure numpy, no torch.  Conventions (see docs/conventions.md):

* ``disparity`` is 1 / planar depth in 1/metres (near = large, infinity = 0), or a
  normalised disparity in 0..1 (near = 1) for relative depth.
* ``coc_px`` is the *signed radius* of the circle of confusion in pixels, positive
  behind the focal plane, negative in front of it.
* Defocus is linear in disparity: ``coc_px = k_px * (focus_disparity - disparity)``.

A thin lens gives ``k_px`` exactly.  For a lens of focal length f and f-number N
focused at distance S_f, a point at distance S images to a blur disc of diameter
``(f / N) * f / (S_f - f) * |S - S_f| / S`` on the sensor, i.e. a radius of
``(f / 2N) * f * S_f / (S_f - f) * |1/S_f - 1/S|``; dividing by the sensor width and
multiplying by the image width converts it to pixels.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Union

import numpy as np

from focuspull.errors import DepthError, LensError

# Depth conventions, mirroring Nuke ZDefocus "math" modes.
from focuspull.spec.fields import DEPTH_MATHS  # noqa: E402 - the one vocabulary
DEPTH_MATH_HELP = {
    "depth": "planar distance from the camera in scene units (metres); inf = infinitely far",
    "far=0": "1/z: reciprocal distance (the usual CG Z channel of Nuke), 0 = infinitely far",
    "disparity_norm": "relative disparity 0..1, near = 1 (depth estimators, Any-to-Bokeh/BokehMe PNGs)",
    "direct": "the channel already holds the signed CoC radius in pixels",
}


@dataclass(frozen=True)
class ThinLens:
    """A physical thin lens.  All lengths carry their unit in the name.

    ``cg_camera``: CG renderers (Blender Cycles measured, bench/README.md) keep the image
    plane at the focal length whatever the focus distance, so their blur lacks the real
    lens' ``S_f / (S_f - f)`` factor (4 % at 85 mm focused at 2 m).  Set it to match a CG
    render's own depth of field; leave it off for photographed plates.
    """

    focal_length_mm: float = 50.0
    fstop: float = 2.8
    sensor_width_mm: float = 36.0
    focus_distance_m: float = 3.0
    cg_camera: bool = False

    def __post_init__(self) -> None:
        _positive("focal_length_mm", self.focal_length_mm)
        _positive("fstop", self.fstop)
        _positive("sensor_width_mm", self.sensor_width_mm)
        _positive("focus_distance_m", self.focus_distance_m)
        if self.focus_distance_m * 1000.0 <= self.focal_length_mm:
            raise LensError(
                f"focus distance {self.focus_distance_m} m is not beyond the focal length "
                f"({self.focal_length_mm} mm): a thin lens cannot focus there",
                "focus farther than the focal length (e.g. --focus-distance 2.0)",
            )

    @property
    def focus_disparity(self) -> float:
        return 1.0 / self.focus_distance_m

    def k_px(self, image_width_px: int) -> float:
        """CoC radius in pixels per unit of disparity (1/m) for an image this wide."""
        f_m = self.focal_length_mm / 1000.0
        s_f = self.focus_distance_m
        image_distance_m = f_m if self.cg_camera else f_m * s_f / (s_f - f_m)
        radius_m_per_disparity = (f_m / (2.0 * self.fstop)) * image_distance_m
        sensor_m = self.sensor_width_mm / 1000.0
        return radius_m_per_disparity / sensor_m * float(image_width_px)


@dataclass(frozen=True)
class ArtisticLens:
    """Blur given directly in pixels, the way compositors dial it in ZDefocus.

    ``size_px`` is the CoC radius of a point at infinity (disparity 0); the blur of
    anything else follows the same linear-in-disparity law as a real lens, so
    near objects can blur more than ``size_px`` (capped by ``max_size_px``).
    ``focus_disparity`` uses the same units as the disparity fed to the lens.
    """

    size_px: float = 10.0
    focus_disparity: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.size_px) or self.size_px < 0:
            raise LensError(f"size must be a finite number of pixels >= 0, got {self.size_px}",
                            "pass e.g. --size 12")
        _positive("focus_disparity", self.focus_disparity)

    def k_px(self, image_width_px: int) -> float:  # noqa: ARG002 - same signature as ThinLens
        return self.size_px / self.focus_disparity


@dataclass(frozen=True)
class LinearLens:
    """The Any-to-Bokeh / BokehMe convention: ``coc = k_px * (focus_disparity - disparity)``."""

    k_px_per_disparity: float = 20.0
    focus_disparity: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.k_px_per_disparity) or self.k_px_per_disparity < 0:
            raise LensError(f"K must be a finite number >= 0, got {self.k_px_per_disparity}",
                            "pass e.g. --k 20")
        if not math.isfinite(self.focus_disparity):
            raise LensError(f"focus disparity must be finite, got {self.focus_disparity}",
                            "pass a disparity between the near and far values of the depth")

    def k_px(self, image_width_px: int) -> float:  # noqa: ARG002 - same signature as ThinLens
        return self.k_px_per_disparity


Lens = Union[ThinLens, ArtisticLens, LinearLens]


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (math.isfinite(value) and value > 0):
        raise LensError(f"{name} must be a finite number > 0, got {value!r}",
                        f"set {name} to a positive value")


def describe_bad_pixels(mask: np.ndarray, what: str) -> str:
    """'12 pixels (first at x=3, y=7)' for an error message."""
    count = int(mask.sum())
    ys, xs = np.nonzero(mask)
    return f"{count} {what} pixel{'s' if count != 1 else ''} (first at x={xs[0]}, y={ys[0]})"


def _bad_kinds(values: np.ndarray, bad: np.ndarray) -> str:
    """'NaN, negative' -- what the invalid values actually are, for the message."""
    v = values[bad]
    kinds = [name for name, hit in (("NaN", np.isnan(v)), ("infinite", np.isinf(v)),
                                    ("negative", v < 0), ("zero", v == 0)) if hit.any()]
    return ", ".join(kinds) or "invalid"


def _check_bad_depth(bad_depth: str) -> None:
    if bad_depth not in ("error", "far"):
        raise DepthError(f"bad_depth must be 'error' or 'far', got {bad_depth!r}",
                         "pass bad_depth='far' (--bad-depth far) to treat invalid depth as infinitely far")


def disparity_from_depth(depth: np.ndarray, depth_math: str = "depth", *,
                         bad_depth: str = "error") -> np.ndarray:
    """Convert a depth channel in one of :data:`DEPTH_MATHS` to disparity.

    Args:
        depth: ``H x W`` float array in the given convention.
        depth_math: ``depth`` (metres, returns 1/m), ``far=0`` (already 1/z),
            ``disparity_norm`` (returned as is).  ``direct`` has no disparity: use
            :func:`coc_from_depth`.
        bad_depth: what to do with NaN, negative, or (for ``depth``) zero values:
            ``"error"`` raises :class:`DepthError` naming how many and where;
            ``"far"`` treats them as infinitely far (disparity 0).

    ``depth`` = +inf is always infinitely far (disparity 0): sky in CG renders.
    """
    if depth_math not in DEPTH_MATHS or depth_math == "direct":
        raise DepthError(f"depth math {depth_math!r} has no disparity",
                         f"use one of {', '.join(m for m in DEPTH_MATHS if m != 'direct')}")
    _check_bad_depth(bad_depth)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise DepthError(f"depth must be H x W, got shape {depth.shape}", "pass a single channel")
    if depth_math == "depth":
        bad = ~(depth > 0)  # NaN, negative and zero (a zero distance is inside the lens)
        with np.errstate(divide="ignore"):
            disparity = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, depth)).astype(np.float32)
        # 1/inf == 0: infinitely far, on purpose.
    else:
        bad = ~np.isfinite(depth) | (depth < 0)
        disparity = np.where(bad, 0.0, depth).astype(np.float32)
    if bad.any() and bad_depth == "error":
        raise DepthError(
            f"depth ({depth_math}) has {describe_bad_pixels(bad, f'invalid ({_bad_kinds(depth, bad)})')}",
            "fix the depth pass, or pass --bad-depth far to treat those pixels as infinitely far",
        )
    return disparity


def coc_from_disparity(disparity: np.ndarray, focus_disparity: float, k_px: float,
                       max_radius_px: float | None = None) -> np.ndarray:
    """Signed CoC radius in pixels: ``k_px * (focus_disparity - disparity)``, clamped to +-max."""
    if max_radius_px is not None and not (max_radius_px >= 0 and math.isfinite(max_radius_px)):
        raise LensError(f"maximum blur size must be a finite number of px >= 0, got {max_radius_px}",
                        "pass e.g. --max-size 32")
    coc = (np.float32(k_px) * (np.float32(focus_disparity) - np.asarray(disparity, np.float32)))
    if max_radius_px is not None:
        coc = np.clip(coc, -max_radius_px, max_radius_px)
    return coc.astype(np.float32, copy=False)


def coc_from_depth(depth: np.ndarray, lens: Lens, depth_math: str = "depth", *,
                   max_radius_px: float | None = None, bad_depth: str = "error") -> np.ndarray:
    """Signed CoC radius (px) of every pixel, from depth in any convention and a lens.

    For ``ThinLens`` the depth must be metric (``depth`` or ``far=0``).  For ``direct`` the
    channel is the CoC itself (only ``max_radius_px`` applies); there ``bad_depth="far"``
    gives invalid pixels the largest behind-focus CoC of the frame (its farthest blur).
    """
    _check_bad_depth(bad_depth)
    depth = np.asarray(depth, dtype=np.float32)
    if depth_math == "direct":
        bad = ~np.isfinite(depth)
        if bad.any():
            if bad_depth == "error":
                raise DepthError(f"direct CoC has {describe_bad_pixels(bad, f'invalid ({_bad_kinds(depth, bad)})')}",
                                 "fix the CoC pass, or pass --bad-depth far")
            farthest = float(depth[~bad].max()) if (~bad).any() else 0.0
            depth = np.where(bad, max(farthest, 0.0), depth).astype(np.float32)
        return coc_from_disparity(-depth, 0.0, 1.0, max_radius_px)
    if isinstance(lens, ThinLens) and depth_math == "disparity_norm":
        raise LensError("a physical lens (focal length, f-stop) needs metric depth, "
                        "but the depth is normalised disparity",
                        "use --size/--k for relative depth, or pass metric depth with --depth-math depth")
    disparity = disparity_from_depth(depth, depth_math, bad_depth=bad_depth)
    width = depth.shape[1]
    return coc_from_disparity(disparity, lens.focus_disparity, lens.k_px(width), max_radius_px)
