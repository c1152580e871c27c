"""Overlapping tiles in space and windows in time, blended with smooth weights.

Pure numpy/torch, no weights.  A 1-D span of ``length`` samples is cut into pieces of
``size`` with at least ``overlap`` in common; each piece gets a weight that rises as a
raised cosine over the overlap on its inner sides (1 at the span's own ends), and the
weights are normalised to sum to 1 at every sample.  Used for tiles (x and y, weights
multiplied) and for temporal windows (clip frames), so any frame size and any clip length
(1 frame included) run on the network's fixed tile and window.

Windows are placed over *clip indices*, never over the frames a chunk renders, so a frame
sees the same windows in a chunked render as in one run.
"""
from __future__ import annotations

import math

import numpy as np


def piece_starts(length: int, size: int, overlap: int) -> list[int]:
    """Start of every piece covering ``0..length-1``; one piece when ``length <= size``."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > overlap >= 0, got size={size}, overlap={overlap}")
    if length <= size:
        return [0]
    stride = size - overlap
    count = math.ceil((length - size) / stride) + 1
    # Spread the pieces evenly, so the last one does not overlap its neighbour by a lot more.
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def ramp(size: int, overlap: int, rise_start: bool, rise_end: bool) -> np.ndarray:
    """Weights of one piece: raised-cosine ramps over ``overlap`` on the sides that rise."""
    w = np.ones(size, np.float64)
    if overlap > 0:
        x = (np.arange(overlap) + 0.5) / overlap
        up = 0.5 - 0.5 * np.cos(math.pi * x)
        if rise_start:
            w[:overlap] *= up
        if rise_end:
            w[size - overlap:] *= up[::-1]
    return w


def piece_weights(length: int, size: int, overlap: int) -> list[tuple[int, int, np.ndarray]]:
    """``(start, stop, normalised weights)`` of every piece; the weights sum to 1 over the span."""
    starts = piece_starts(length, size, overlap)
    stops = [min(length, s + size) for s in starts]
    raw = []
    total = np.zeros(length, np.float64)
    for i, (a, b) in enumerate(zip(starts, stops)):
        # Ramp over the actual overlap with the neighbour (uneven spacing), at most ``overlap``.
        left = stops[i - 1] - a if i > 0 else 0
        right = b - starts[i + 1] if i + 1 < len(starts) else 0
        w = np.ones(b - a, np.float64)
        if left > 0:
            w *= ramp(b - a, left, True, False)
        if right > 0:
            w *= ramp(b - a, right, False, True)
        raw.append(w)
        total[a:b] += w
    return [(a, b, w / total[a:b]) for a, b, w in zip(starts, stops, raw)]


def windows_covering(index: int, length: int, size: int, overlap: int) -> list[tuple[int, int, np.ndarray]]:
    """The temporal windows (over a clip of ``length`` frames) that contain clip index ``index``."""
    return [(a, b, w) for a, b, w in piece_weights(length, size, overlap) if a <= index < b]
