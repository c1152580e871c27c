"""Nuke animation curves -> the job's keyframes, exactly.

A curve arrives from the adapter as :class:`Curve`: its keys ``(frame, value,
interpolation)`` and Nuke's own ``evaluate``.  When every key is linear, the keys *are*
the job's keyframes (``"interpolation": "linear"``).  Any other shape (constant steps,
smooth, Catmull-Rom, cubic, user slopes, linear extrapolation, expressions) has no
exact equivalent in the job, so the curve is baked: one linear key per integer frame over
the keys' span and the rendered frames, with Nuke's value on that frame.  The job only
ever evaluates whole frames, so a baked curve is exact where it is used.

Either way the result is checked against ``evaluate`` on every rendered frame, so a key
list that Nuke would interpolate differently can never slip through unbaked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from focuspull.spec.keyframes import Animated

#: Interpolation names the adapter reports (Nuke's constants mapped to words).
LINEAR = "linear"


@dataclass(frozen=True)
class Curve:
    keys: tuple  #: ((frame, value, interpolation name), ...) sorted by frame
    evaluate: Callable[[float], float]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def to_keyframes(curve: Curve, frames: Sequence[int], convert: Callable[[float], float] = float):
    """(job value, baked) for ``curve`` over ``frames``: a number when the curve is flat on
    them, else ``{"keys": {...}, "interpolation": "linear"}``.  ``convert`` maps a Nuke
    value to the job's (e.g. the focal point's y flip); it must be affine, so a linear
    segment stays linear."""
    frames = sorted(frames)
    wanted = {f: convert(curve.evaluate(f)) for f in frames}
    keys = curve.keys
    if keys and all(k[2] == LINEAR for k in keys):
        animated = Animated.keyed({float(x): convert(y) for x, y, _ in keys})
        if all(_close(animated.value_at(f), v) for f, v in wanted.items()):
            return _plain(animated), False
    # Bake: every integer frame over the keys' span and the rendered frames.
    span = [f for f in frames]
    if keys:
        span += list(range(math.floor(keys[0][0]), math.ceil(keys[-1][0]) + 1))
    lo, hi = min(span), max(span)
    baked = Animated.keyed({float(f): convert(curve.evaluate(f)) for f in range(lo, hi + 1)})
    return _plain(baked), True


def _plain(animated: Animated):
    return animated.to_dict()
