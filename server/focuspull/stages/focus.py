"""Focus picking: the focal disparity from a point, a matte, or a tracked point (numpy).

Pixel coordinates: ``x`` to the right, ``y`` down, ``(0, 0)`` is the **centre** of the
top-left pixel (so pixel ``(i, j)`` covers ``x in [j-0.5, j+0.5)``); a point is looked up
in the pixel it falls in (nearest pixel centre).  Nuke's picker uses bottom-left origin
with pixel corners at integers: the host adapter converts (``x_nuke - 0.5``,
``height - 0.5 - y_nuke``).

All disparities are in whatever units the depth was converted to (1/m or normalised),
near = large, as in :mod:`focuspull.stages.lens`.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from focuspull.errors import DepthError, InputError
from focuspull.io.transfer import LUMA_WEIGHTS



# --------------------------------------------------------------------------- point / matte

def focus_disparity_at(disparity: np.ndarray, x: float, y: float, radius_px: int = 4) -> float:
    """Median disparity in the ``(2r+1)^2`` window around pixel ``(x, y)``, NaN-safe.

    The window is clipped to the image; the median ignores NaN and infinite values, so a
    pick on a noisy edge or a hole in the depth still gives the value most of the window
    agrees on.  Raises :class:`InputError` for a point outside the image and
    :class:`DepthError` when the window holds no finite value.
    """
    disparity = _as_2d(disparity, "disparity")
    height, width = disparity.shape
    if not (np.isfinite(x) and np.isfinite(y)):
        raise InputError(f"focus point ({x}, {y}) is not finite", "pick a point on the image")
    col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    if not (0 <= col < width and 0 <= row < height):
        raise InputError(f"focus point ({x:g}, {y:g}) is outside the {width}x{height} image",
                         f"pick x in 0..{width - 1} and y in 0..{height - 1} "
                         "(pixel centres, origin top-left)")
    radius = int(radius_px)
    if radius < 0:
        raise InputError(f"radius_px must be >= 0, got {radius_px}", "use e.g. radius_px=4")
    window = disparity[max(0, row - radius):row + radius + 1, max(0, col - radius):col + radius + 1]
    values = window[np.isfinite(window)]
    if values.size == 0:
        raise DepthError(f"no finite depth within {radius} px of ({x:g}, {y:g})",
                         "pick a point where the depth is valid, or increase radius_px")
    return float(np.median(values))


def focus_disparity_from_matte(disparity: np.ndarray, matte: np.ndarray) -> float:
    """Weighted median of the disparity inside a soft ``matte`` (``H x W``, 0..1).

    The weighted median (the smallest value with at least half the total weight at or
    below it) keeps a matte that spills onto the background from dragging the focus
    back, as a weighted mean would.  Raises :class:`InputError` for an empty matte.
    """
    disparity = _as_2d(disparity, "disparity")
    matte = _as_2d(matte, "matte")
    if matte.shape != disparity.shape:
        raise InputError(f"matte is {matte.shape[1]}x{matte.shape[0]} but the depth is "
                         f"{disparity.shape[1]}x{disparity.shape[0]}",
                         "render the focus matte at the resolution of the plate")
    weights = np.where(np.isfinite(matte), np.clip(matte, 0.0, 1.0), 0.0).astype(np.float64)
    valid = np.isfinite(disparity) & (weights > 0)
    if not valid.any():
        raise InputError("the focus matte is empty (no pixel > 0 with valid depth)",
                         "check that the matte channel covers the subject, or focus on a "
                         "point instead")
    return weighted_median(disparity[valid].astype(np.float64), weights[valid])


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Smallest value whose cumulative weight reaches half the total (1-D, weights > 0)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, 0.5 * cumulative[-1], side="left"))
    return float(values[order][min(index, values.size - 1)])


# --------------------------------------------------------------------------- tracking

def luminance(rgb: np.ndarray) -> np.ndarray:
    """Perceptually even luminance for matching: cube root of Rec.709 Y (like L*).

    Scene-linear values span decades; the cube root keeps a highlight from dominating the
    correlation while staying monotonic.  ``H x W x C`` (C >= 3, or 1) -> ``H x W``.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 2:
        y = rgb
    elif rgb.ndim == 3 and rgb.shape[2] >= 3:
        y = rgb[..., :3] @ LUMA_WEIGHTS
    elif rgb.ndim == 3 and rgb.shape[2] == 1:
        y = rgb[..., 0]
    else:
        raise InputError(f"cannot take the luminance of an array of shape {rgb.shape}",
                         "pass H x W x 3 (or 4) frames")
    return np.cbrt(np.maximum(np.nan_to_num(y, nan=0.0, posinf=0.0), 0.0)).astype(np.float32)


def _sample_patch(image: np.ndarray, cx: float, cy: float, size: int) -> np.ndarray:
    """Bilinear ``size x size`` patch centred on sub-pixel ``(cx, cy)``, edges clamped."""
    half = size // 2
    offsets = np.arange(size, dtype=np.float64) - half
    xs = np.clip(cx + offsets, 0.0, image.shape[1] - 1.0)
    ys = np.clip(cy + offsets, 0.0, image.shape[0] - 1.0)
    x0 = np.minimum(np.floor(xs).astype(int), image.shape[1] - 2 if image.shape[1] > 1 else 0)
    y0 = np.minimum(np.floor(ys).astype(int), image.shape[0] - 2 if image.shape[0] > 1 else 0)
    fx, fy = xs - x0, ys - y0
    x1 = np.minimum(x0 + 1, image.shape[1] - 1)
    y1 = np.minimum(y0 + 1, image.shape[0] - 1)
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def _ncc_map(image: np.ndarray, template: np.ndarray, cx: int, cy: int, search: int) -> np.ndarray:
    """NCC of ``template`` against every integer centre within ``search`` px of (cx, cy).

    Returns ``(2s+1) x (2s+1)``; entry ``[dy+s, dx+s]`` is the score at ``(cx+dx, cy+dy)``.
    Out-of-image samples repeat the border.
    """
    size = template.shape[0]
    half = size // 2
    reach = half + search
    padded = np.pad(image, reach + 1, mode="edge")
    top, left = cy + 1, cx + 1  # (cy - reach) in padded coordinates
    region = padded[top:top + 2 * reach + 1, left:left + 2 * reach + 1].astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(region, (size, size))
    t = template.astype(np.float64) - template.mean()
    t_norm = np.sqrt((t * t).sum())
    w_mean = windows.mean(axis=(2, 3))
    w_sq = (windows * windows).sum(axis=(2, 3)) - size * size * w_mean ** 2
    cross = np.einsum("abij,ij->ab", windows, t)
    denominator = np.sqrt(np.maximum(w_sq, 0.0)) * t_norm
    # Flat windows or a flat template carry no position information: score 0.
    return np.where(denominator > 1e-12, cross / np.maximum(denominator, 1e-300), 0.0)


def _subpixel_peak(scores: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, score) of the best match, refined with a parabola along each axis."""
    iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[iy, ix])

    def refine(minus: float, centre: float, plus: float) -> float:
        curvature = minus - 2 * centre + plus
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (minus - plus) / curvature, -0.5, 0.5))

    dx = refine(scores[iy, ix - 1], best, scores[iy, ix + 1]) if 0 < ix < scores.shape[1] - 1 else 0.0
    dy = refine(scores[iy - 1, ix], best, scores[iy + 1, ix]) if 0 < iy < scores.shape[0] - 1 else 0.0
    search = scores.shape[0] // 2
    return ix - search + dx, iy - search + dy, best


def track_point(frames: Callable[[int], np.ndarray], start_frame: int, xy: tuple[float, float],
                frame_list: Iterable[int], patch: int = 15, search: int = 24, *,
                refresh_below: float = 0.85, min_score: float = 0.5,
                ) -> dict[int, tuple[float, float]]:
    """Follow a picked point forward and backward through ``frame_list``.

    Normalised cross-correlation template matching on luminance with a parabolic
    sub-pixel peak.  The template is the patch around the pick in ``start_frame``; it is
    replaced (conservatively, to limit drift) by the patch at the current match only when
    the current template's score falls below ``refresh_below`` while the match is still
    trustworthy.  Where the best score is below ``min_score`` (the point is occluded or
    left the frame) the last good position is held.  Motion is predicted with constant
    velocity, so ``search`` bounds the *change* of speed per frame.

    Tracking runs outward from ``start_frame``, so the position at frame ``t`` depends
    only on the frames between ``start_frame`` and ``t``: tracking a longer list gives the
    same positions on the common frames (chunk invariance, given every frame in between).

    Args:
        frames: ``i -> H x W x C`` scene-linear frame.
        start_frame: the frame the point was picked in (must be in ``frame_list``).
        xy: picked position ``(x, y)`` in pixels (centre-of-top-left-pixel origin).
        frame_list: frames to track (any order; tracked outward from ``start_frame``).
        patch: template size in pixels (odd).  search: half-size of the search square.
    Returns:
        ``{frame: (x, y)}`` for every frame of ``frame_list``.
    """
    frame_numbers = sorted(set(int(f) for f in frame_list))
    if start_frame not in frame_numbers:
        raise InputError(f"start frame {start_frame} is not among the frames to track "
                         f"({frame_numbers[0] if frame_numbers else '-'}.."
                         f"{frame_numbers[-1] if frame_numbers else '-'})",
                         "pick the focus point on a frame inside the rendered range")
    if patch < 3 or patch % 2 == 0:
        raise InputError(f"patch must be an odd size >= 3, got {patch}", "use e.g. patch=15")
    if search < 1:
        raise InputError(f"search must be >= 1 px, got {search}", "use e.g. search=24")
    start_image = luminance(frames(start_frame))
    height, width = start_image.shape
    x0, y0 = float(xy[0]), float(xy[1])
    if not (-0.5 <= x0 < width - 0.5 and -0.5 <= y0 < height - 0.5):
        raise InputError(f"track point ({x0:g}, {y0:g}) is outside the {width}x{height} frame",
                         "pick the point on the image")
    start_template = _sample_patch(start_image, x0, y0, patch)
    result = {start_frame: (x0, y0)}
    index = frame_numbers.index(start_frame)
    for direction in (frame_numbers[index + 1:], frame_numbers[:index][::-1]):
        template = start_template
        position = (x0, y0)
        velocity = (0.0, 0.0)
        for frame in direction:
            image = luminance(frames(frame))
            if image.shape != start_image.shape:
                raise InputError(f"frame {frame} is {image.shape[1]}x{image.shape[0]}, frame "
                                 f"{start_frame} is {width}x{height}",
                                 "track on frames of one size")
            predicted = (position[0] + velocity[0], position[1] + velocity[1])
            cx = int(np.clip(np.floor(predicted[0] + 0.5), 0, width - 1))
            cy = int(np.clip(np.floor(predicted[1] + 0.5), 0, height - 1))
            dx, dy, score = _subpixel_peak(_ncc_map(image, template, cx, cy, search))
            if score < min_score:
                velocity = (0.0, 0.0)  # lost: hold still rather than fly off
                result[frame] = position
                continue
            found = (float(np.clip(cx + dx, 0, width - 1)), float(np.clip(cy + dy, 0, height - 1)))
            velocity = (found[0] - position[0], found[1] - position[1])
            position = found
            result[frame] = position
            if score < refresh_below:
                template = _sample_patch(image, position[0], position[1], patch)
    return result


# --------------------------------------------------------------------------- smoothing

def smooth_focus(values: dict[int, float], window: int = 5) -> dict[int, float]:
    """Steady a per-frame focus disparity: running median, then running mean.

    The median (radius ``window // 2``) removes spikes and keeps steps sharp; the mean
    (radius ``window - window // 2``) smooths the remaining jitter and turns a step (the
    user's point jumping to another subject) into a ramp that reaches the new value at
    most ``window`` frames after the step.  The output at ``t`` depends only on input
    frames ``t - window .. t + window`` (by frame number), so a chunked render that
    passes the values of its range widened by ``window`` gets the same numbers as a
    single run.  Frames missing from ``values`` are skipped, not treated as zero.
    """
    if window < 0:
        raise InputError(f"focus smoothing window must be >= 0, got {window}",
                         "use e.g. window=5, or 0 to switch smoothing off")
    frames = sorted(values)
    for frame in frames:
        if not np.isfinite(values[frame]):
            raise InputError(f"focus disparity at frame {frame} is {values[frame]}",
                             "fix the focus keyframe or pick a point with valid depth")
    median_radius = window // 2
    mean_radius = window - median_radius
    medians = {t: float(np.median(_neighbours(values, frames, t, median_radius)))
               for t in frames}
    return {t: float(np.mean(_neighbours(medians, frames, t, mean_radius))) for t in frames}


def _neighbours(values: dict[int, float], frames: list[int], t: int, radius: int) -> list[float]:
    lo = np.searchsorted(frames, t - radius, side="left")
    hi = np.searchsorted(frames, t + radius, side="right")
    return [values[f] for f in frames[lo:hi]]


def _as_2d(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise InputError(f"{what} must be H x W, got shape {array.shape}",
                         f"pass a single-channel {what}")
    return array


def smoothing_reach(window: int) -> int:
    """Frames on each side of frame t whose picked focus :func:`smooth_focus` reads: the
    stage's declared reach, used by preflight, chunking and the farm."""
    return max(0, int(window))
