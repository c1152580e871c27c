"""Temporal stabilisation of flickering depth (numpy; OpenCV for the optical flow).

Monocular depth estimators give each frame its own scale and shift, plus noise, so the
focal plane "breathes" from frame to frame.  :func:`stabilise_frame` removes that:

0. **Follow the motion** (with a :class:`FrameMotion`, built from the colour frames).
   Each neighbour's disparity is looked up along the optical flow ``t -> s``; only pixels
   of ``t`` that ``s`` really sees (forward-backward consistent, inside the frame, same
   colour) take part in steps 1 and 2.  Without it pixels are compared in place, which
   is right only for a locked-off camera.
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

Chunk invariance: the result for ``t`` is a deterministic function of the raw frames (and
colour frames) in its window and of ``first``/``last`` (the *clip* bounds) only; nothing depends on which
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
SIGMA_DISPARITY_REL = 0.10
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
               iterations: int = 6, mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """:func:`fit_scale_shift` plus the robust residual scale (MAD * 1.4826) of the fit,
    in ``target`` units: how badly the two frames disagree after alignment.

    ``mask`` (``H x W`` bool): only grid pixels where it is True take part (e.g. pixels
    a warped neighbour really sees).  Fewer than 16 such pixels: ``(1, 0, inf)``.
    """
    rows, cols = sample_grid(source.shape, samples)
    if mask is not None:
        keep = mask[rows, cols]
        rows, cols = rows[keep], cols[keep]
        if rows.size < 16:
            return 1.0, 0.0, float("inf")
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
                    window: int = 2, *, motion: "FrameMotion | None" = None,
                    sigma_disparity: float | None = None,
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
        motion: a :class:`FrameMotion` (anything with its ``warp(t, s, values)``).
            Given, each neighbour's disparity is warped into frame ``t`` along the
            optical flow and only pixels that pass the forward-backward and colour tests
            take part (motion compensation); ``None`` compares pixels in place (a
            locked-off camera).
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

    candidates: list[tuple[float, np.ndarray, np.ndarray | None]] = []
    inverse_scale, inverse_shift, time_total = 0.0, 0.0, 0.0
    for s in window_frames(t, first, last, window):  # ascending: a fixed summation order
        seen = None  # pixels of frame t that frame s sees (None: all)
        if s == t:
            a, b, aligned = 1.0, 0.0, reference
        else:
            raw = _checked_frame(get_disparity, s, reference.shape)
            if motion is not None:
                raw, seen = motion.warp(t, s, raw)
            a, b, misfit = robust_fit(raw, reference, samples=fit_samples, mask=seen)
            if misfit > max_misfit_rel * reference_range:
                continue  # another shot (a cut) or chaos: it says nothing about frame t
            aligned = raw * np.float32(a) + np.float32(b)
        time_weight = 1.0 if sigma_time is None else float(np.exp(-0.5 * ((s - t) / sigma_time) ** 2))
        candidates.append((time_weight, aligned, seen))
        # Map from frame t's scale/shift to frame s's: x -> (x - b) / a.
        inverse_scale += time_weight / a
        inverse_shift += time_weight * b / a
        time_total += time_weight
    # The bilateral filter's centre is frame t itself: a per-pixel median of the warped
    # candidates was tried and measured worse (where flow is wrong in two neighbours at
    # an edge, the median follows them and frame t's own value loses its weight).
    centre = reference
    weighted_sum = np.zeros(reference.shape, np.float32)
    weight_total = np.zeros(reference.shape, np.float32)
    for time_weight, aligned, seen in candidates:
        difference = aligned - centre
        weight = np.exp(-(difference * difference) * inv_two_sigma2) * np.float32(time_weight)
        if seen is not None:
            weight *= seen
        weighted_sum += weight * aligned
        weight_total += weight
    filtered = weighted_sum / weight_total  # >= the weight of s == t, never zero
    scale = np.float32(inverse_scale / time_total)
    shift = np.float32(inverse_shift / time_total)
    return (filtered * scale - shift).astype(np.float32, copy=False)


#: A warped neighbour pixel is used only when its flow image code (0..255, see
#: :func:`focuspull.stages.depth.flow.flow_image`) is within this of frame t's: where the
#: flow slides across an object's edge, the colours disagree and the pixel is dropped.
COLOUR_TOLERANCE = 16


class FrameMotion:
    """Motion between the frames of a clip, for :func:`stabilise_frame`.

    ``warp(t, s, values_s) -> (warped, seen)``: frame ``s``'s ``H x W`` values seen from
    frame ``t`` (nearest-pixel lookup along the DIS flow ``t -> s``, so values of two
    surfaces are never blended at an edge) and the ``H x W`` bool mask of pixels of ``t``
    that ``s`` really sees: forward-backward consistent, inside the frame, and of the same
    colour (:data:`COLOUR_TOLERANCE`).  Flow fields and flow images are kept in a small
    LRU; the cache changes how often flow is computed, never its value (DIS is
    deterministic), so results stay chunk-invariant.
    """

    def __init__(self, get_image: Callable[[int], np.ndarray], capacity: int = 16,
                 colour_tolerance: int = COLOUR_TOLERANCE) -> None:
        self._get_image = get_image
        self.capacity = max(2, int(capacity))
        self.colour_tolerance = int(colour_tolerance)
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._flows: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.computed = 0  # flow fields computed so far (for tests)

    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` as the ``H x W`` uint8 flow image."""
        from focuspull.stages.depth.flow import flow_image  # noqa: PLC0415 - cv2 on use

        if i in self._images:
            self._images.move_to_end(i)
            return self._images[i]
        image = flow_image(self._get_image(i))
        image.setflags(write=False)
        self._images[i] = image
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)
        return image

    def flow(self, a: int, b: int) -> np.ndarray:
        """``H x W x 2`` DIS flow from frame ``a`` to frame ``b``."""
        from focuspull.stages.depth.flow import dis_flow  # noqa: PLC0415

        key = (int(a), int(b))
        if key in self._flows:
            self._flows.move_to_end(key)
            return self._flows[key]
        flow = dis_flow(self.image(a), self.image(b))
        flow.setflags(write=False)
        self.computed += 1
        self._flows[key] = flow
        while len(self._flows) > self.capacity:
            self._flows.popitem(last=False)
        return flow

    def warp(self, t: int, s: int, values_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from focuspull.stages.depth.flow import consistent, remap, sample_maps  # noqa: PLC0415

        flow_ts, flow_st = self.flow(t, s), self.flow(s, t)
        if flow_ts.shape[:2] != values_s.shape:
            raise DepthError(f"frame {s}: the depth is {values_s.shape} (H x W), the image is "
                             f"{flow_ts.shape[:2]}", "give the images and the depth the same size")
        maps = sample_maps(flow_ts)
        warped = remap(values_s, maps[0], maps[1], nearest=True)
        seen = consistent(flow_ts, flow_st, maps=maps)
        colour_s = remap(self.image(s), maps[0], maps[1], nearest=True)
        seen &= np.abs(colour_s - self.image(t)) <= self.colour_tolerance
        return warped, seen


class DepthStabiliser:
    """Cache-friendly driver of :func:`stabilise_frame` for the pipeline.

    Keeps the last ``2 * window + 1`` raw frames it loaded (LRU), so rendering frames in
    order reads each raw frame once.  The cache changes only *how often* ``get_disparity``
    is called, never the result: ``.frame(t)`` equals ``stabilise_frame(t, ...)`` bit for bit.
    """

    def __init__(self, get_disparity: Callable[[int], np.ndarray], first: int, last: int,
                 window: int = 2, *, get_image: Callable[[int], np.ndarray] | None = None,
                 **options) -> None:
        _check_bounds(first, first, last, window)
        self._get_disparity = get_disparity
        self.first, self.last, self.window = int(first), int(last), int(window)
        self.options = options
        if get_image is not None and self.window > 0:
            # Frame t needs the flows t <-> s of its 2w neighbours; those of the w frames
            # before it were computed by them (2 per pair), so ~2w(w+1) stay live.
            self.options["motion"] = FrameMotion(get_image, capacity=2 * self.window * (self.window + 1) + 2)
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
