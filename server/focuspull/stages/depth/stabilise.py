"""Temporal stabilisation of flickering depth (pure numpy).

Monocular depth estimators give each frame its own scale and shift, plus noise, so the
focal plane "breathes" from frame to frame.  :func:`stabilise_frame` removes that:

1. **Align.**  Every neighbour ``s`` in the window ``max(first, t-w) .. min(last, t+w)``
   is mapped into frame ``t``'s scale/shift with a robust affine fit
   ``d_t ~ a_s * d_s + b_s`` on a fixed pixel grid (weighted least squares, re-weighted
   with Huber then Tukey weights so moving objects and disocclusions are outliers).
   A neighbour that still disagrees badly after alignment (a cut, a flash) is skipped.
2. **Filter.**  A temporal bilateral filter in disparity: each neighbour's aligned value
   is weighted by a temporal weight and by ``exp(-(aligned_s - d_t)^2 / 2 sigma^2)``, so
   where an edge moved (the neighbour sees something else) it gets no weight and the edge
   is not smeared.
3. **Common scale.**  The result, in frame ``t``'s own scale/shift, is mapped into the
   *window-average* scale/shift (the mean of the inverse fits).  This is what removes the
   per-frame scale/shift jitter: consecutive windows share all but one frame, so the
   average changes ``2w+1`` times more slowly than the raw jitter.

Chunk invariance: the result for ``t`` is a deterministic function of the raw frames in
its window and of ``first``/``last`` (the *clip* bounds) only; nothing depends on which
frames were processed before, so rendering a range in chunks gives, bit for bit, the
frames of a single run.  A static clip comes back unchanged (all fits are exactly
``a=1, b=0``).

Arrays: ``H x W`` float32 disparity, near = large, any scale (relative or metric 1/m).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from focuspull.stages.depth.sources import sample_grid
from focuspull.errors import DepthError, InputError

#: Pixels used by each scale/shift fit (a fixed regular grid, no randomness).
FIT_SAMPLES = 4096
#: Bilateral sigma as a fraction of frame t's robust disparity range (1st..99th pct).
SIGMA_DISPARITY_REL = 0.05
#: Neighbours that still disagree this much (robust residual / frame t's range) after
#: alignment are a different shot: they are skipped rather than averaged in.
MAX_MISFIT_REL = 0.15
_HUBER_K = 1.345
_TUKEY_C = 4.685


def window_frames(t: int, first: int, last: int, window: int) -> range:
    """The frames whose raw disparity determines stabilised frame ``t``."""
    return range(max(first, t - window), min(last, t + window) + 1)


def fit_scale_shift(source: np.ndarray, target: np.ndarray, *,
                    samples: int = FIT_SAMPLES, iterations: int = 6) -> tuple[float, float]:
    """Robust ``(a, b)`` with ``target ~ a * source + b`` over a fixed pixel grid.

    Weighted least squares, re-weighted first with Huber weights (to converge from the
    plain fit) then with Tukey's biweight (which gives gross outliers, e.g. a moving
    object, zero weight).  The residual scale is the MAD.  Identical inputs give
    exactly ``(1.0, 0.0)``.  Degenerate cases (flat source, non-positive slope) fall back
    to a pure shift: the depth ordering is never flipped.
    """
    a, b, _ = robust_fit(source, target, samples=samples, iterations=iterations)
    return a, b


def robust_fit(source: np.ndarray, target: np.ndarray, *, samples: int = FIT_SAMPLES,
               iterations: int = 6) -> tuple[float, float, float]:
    """:func:`fit_scale_shift` plus the robust residual scale (MAD * 1.4826) of the fit,
    in ``target`` units: how badly the two frames disagree after alignment."""
    rows, cols = sample_grid(source.shape, samples)
    x = source[rows, cols].astype(np.float64)
    y = target[rows, cols].astype(np.float64)
    weights = np.ones_like(x)
    a, b = 1.0, float(np.median(y - x))
    for iteration in range(iterations):
        fitted = _weighted_line(x, y, weights)
        if fitted is None:
            break
        a, b = fitted
        scale = _mad_scale(y - (a * x + b))
        if not scale > 1e-12 * (1.0 + float(np.abs(y).max(initial=0.0))):
            break  # exact fit (e.g. a static clip): nothing left to re-weight
        r = np.abs(y - (a * x + b)) / scale
        if iteration < iterations // 2:
            weights = np.where(r <= _HUBER_K, 1.0, _HUBER_K / np.maximum(r, 1e-300))
        else:
            weights = np.where(r < _TUKEY_C, (1.0 - (r / _TUKEY_C) ** 2) ** 2, 0.0)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0.0):
        a, b = 1.0, float(np.median(y - x))
    return float(a), float(b), _mad_scale(y - (a * x + b))


def _mad_scale(residual: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(residual - np.median(residual))))


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float] | None:
    total = w.sum()
    if not total > 0:
        return None
    mx = (w * x).sum() / total
    my = (w * y).sum() / total
    dx = x - mx
    var_x = (w * dx * dx).sum()
    if not var_x > 1e-12 * total * (1.0 + mx * mx):
        return 1.0, float(my - mx)  # flat source: only a shift is observable
    a = (w * dx * (y - my)).sum() / var_x
    return float(a), float(my - a * mx)


def stabilise_frame(t: int, get_disparity: Callable[[int], np.ndarray], first: int, last: int,
                    window: int = 2, *, sigma_disparity: float | None = None,
                    sigma_disparity_rel: float = SIGMA_DISPARITY_REL,
                    sigma_time: float | None = None, fit_samples: int = FIT_SAMPLES,
                    max_misfit_rel: float = MAX_MISFIT_REL) -> np.ndarray:
    """Stabilised disparity of frame ``t``.

    Args:
        t: frame to produce, ``first <= t <= last``.
        get_disparity: ``i -> H x W`` raw disparity of frame ``i`` (near = large), for any
            ``i`` in ``[first, last]``; must be deterministic.
        first, last: bounds of the **clip** (not of the chunk being rendered).
        window: ``w``; frames ``t-w .. t+w`` (clipped to the clip) are used.
        sigma_disparity: bilateral range sigma in disparity units of frame ``t``; default
            ``sigma_disparity_rel`` times frame ``t``'s 1st..99th percentile range.
        sigma_time: Gaussian temporal sigma in frames; ``None`` = equal weights over the
            window (the strongest flicker reduction for a given window).
        fit_samples: pixels in the fixed grid used by the scale/shift fits.
        max_misfit_rel: a neighbour whose aligned residual scale exceeds this fraction
            of frame ``t``'s range is left out entirely (a cut, a flash, a whip pan).
    Returns:
        ``H x W`` float32, in the window-average scale/shift of the raw disparity.
    """
    _check_bounds(t, first, last, window)
    reference = _checked_frame(get_disparity, t, None)
    if window == 0:
        return reference.copy()
    rows, cols = sample_grid(reference.shape, fit_samples)
    low, high = np.percentile(reference[rows, cols], [1.0, 99.0])
    reference_range = float(high - low)
    if sigma_disparity is None:
        sigma_disparity = sigma_disparity_rel * reference_range
    if not sigma_disparity > 0:
        # Flat frame: no edges to protect; any positive sigma will do.
        sigma_disparity = 1e-6 * max(1.0, float(np.abs(reference).max()))
    inv_two_sigma2 = np.float32(1.0 / (2.0 * sigma_disparity ** 2))

    weighted_sum = np.zeros(reference.shape, np.float32)
    weight_total = np.zeros(reference.shape, np.float32)
    inverse_scale, inverse_shift, time_total = 0.0, 0.0, 0.0
    for s in window_frames(t, first, last, window):  # ascending: a fixed summation order
        if s == t:
            a, b, aligned = 1.0, 0.0, reference
        else:
            raw = _checked_frame(get_disparity, s, reference.shape)
            a, b, misfit = robust_fit(raw, reference, samples=fit_samples)
            if misfit > max_misfit_rel * reference_range:
                continue  # another shot (a cut) or chaos: it says nothing about frame t
            aligned = raw * np.float32(a) + np.float32(b)
        time_weight = 1.0 if sigma_time is None else float(np.exp(-0.5 * ((s - t) / sigma_time) ** 2))
        difference = aligned - reference
        weight = np.exp(-(difference * difference) * inv_two_sigma2) * np.float32(time_weight)
        weighted_sum += weight * aligned
        weight_total += weight
        # Map from frame t's scale/shift to frame s's: x -> (x - b) / a.
        inverse_scale += time_weight / a
        inverse_shift += time_weight * b / a
        time_total += time_weight
    filtered = weighted_sum / weight_total  # >= the weight of s == t, never zero
    scale = np.float32(inverse_scale / time_total)
    shift = np.float32(inverse_shift / time_total)
    return (filtered * scale - shift).astype(np.float32, copy=False)


class DepthStabiliser:
    """Cache-friendly driver of :func:`stabilise_frame` for the pipeline.

    Keeps the last ``2 * window + 1`` raw frames it loaded (LRU), so rendering frames in
    order reads each raw frame once.  The cache changes only *how often* ``get_disparity``
    is called, never the result: ``.frame(t)`` equals ``stabilise_frame(t, ...)`` bit for bit.
    """

    def __init__(self, get_disparity: Callable[[int], np.ndarray], first: int, last: int,
                 window: int = 2, **options) -> None:
        _check_bounds(first, first, last, window)
        self._get_disparity = get_disparity
        self.first, self.last, self.window = int(first), int(last), int(window)
        self.options = options
        self.capacity = 2 * self.window + 1
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.loads = 0  # raw frames read so far (for tests and progress reports)

    def raw(self, i: int) -> np.ndarray:
        """Raw disparity of frame ``i``, read-only, from the cache when possible."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        frame = np.array(self._get_disparity(i), dtype=np.float32)  # private copy
        frame.setflags(write=False)
        self.loads += 1
        self._cache[i] = frame
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return frame

    def frame(self, t: int) -> np.ndarray:
        return stabilise_frame(t, self.raw, self.first, self.last, self.window, **self.options)


def _check_bounds(t: int, first: int, last: int, window: int) -> None:
    if not (isinstance(window, (int, np.integer)) and window >= 0):
        raise InputError(f"stabilisation window must be an integer >= 0, got {window!r}",
                         "pass e.g. window=2 (frames t-2..t+2), or 0 to switch it off")
    if first > last:
        raise InputError(f"clip bounds are reversed: first={first} > last={last}",
                         "pass the first and last frame of the clip")
    if not first <= t <= last:
        raise InputError(f"frame {t} is outside the clip {first}..{last}",
                         "ask only for frames of the clip; first/last are the clip's bounds")


def _checked_frame(get_disparity: Callable[[int], np.ndarray], i: int,
                   shape: tuple[int, int] | None) -> np.ndarray:
    frame = np.asarray(get_disparity(i), dtype=np.float32)
    if frame.ndim != 2:
        raise DepthError(f"disparity of frame {i} must be H x W, got shape {frame.shape}",
                         "pass a single depth channel per frame")
    if shape is not None and frame.shape != shape:
        raise DepthError(f"disparity of frame {i} is {frame.shape}, its neighbour is {shape}",
                         "give every depth frame of the clip the same size")
    if not np.isfinite(frame).all():
        raise DepthError(f"disparity of frame {i} has {int((~np.isfinite(frame)).sum())} "
                         "non-finite pixels", "convert depth with bad_depth='far' (or fix "
                         "the depth pass) before stabilising")
    return frame


def stabiliser_reach(window: int) -> int:
    """Frames on each side of frame t that its stabilised depth reads (t-w..t+w): the
    stage's declared reach, used by preflight, chunking and the farm."""
    return max(0, int(window))
