"""The smooth keyframe interpolation against scipy's PCHIP (Fritsch-Butland weighted
harmonic mean): the same interior tangents, so the same curve between interior keys.
The ends differ on purpose: focuspull eases out of the first and into the last key
(tangent 0), PCHIP extrapolates a one-sided slope there."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.spec.keyframes import Animated

interpolate = pytest.importorskip("scipy.interpolate")

CASES = [
    {1001: 1.5, 1010: 2.0, 1030: 8.0, 1040: 8.5, 1048: 14.0},  # a rack with uneven spacing
    {1: 0.0, 4: 3.0, 5: 3.5, 20: 3.6, 21: 10.0, 40: 11.0},  # bunched and spread keys
    {1: 5.0, 10: 2.0, 12: 1.0, 30: 0.5, 31: 0.4},  # decreasing
    {1: 1.0, 5: 4.0, 9: 2.0, 13: 6.0, 17: 6.0, 21: 1.0},  # extrema and a hold: tangents 0 there
]


@pytest.mark.parametrize("keys", CASES)
def test_interior_tangents_match_scipy_pchip(keys):
    animated = Animated.keyed(keys, "smooth")
    frames = np.array(sorted(keys), np.float64)
    values = np.array([keys[f] for f in sorted(keys)], np.float64)
    reference = interpolate.PchipInterpolator(frames, values).derivative()(frames)
    ours = np.array(animated._tangents())
    np.testing.assert_allclose(ours[1:-1], reference[1:-1], rtol=1e-12, atol=1e-12)
    assert ours[0] == 0.0 and ours[-1] == 0.0


@pytest.mark.parametrize("keys", CASES)
def test_values_between_interior_keys_match_scipy_pchip(keys):
    animated = Animated.keyed(keys, "smooth")
    frames = sorted(keys)
    pchip = interpolate.PchipInterpolator(np.array(frames, float), np.array([keys[f] for f in frames], float))
    # Only intervals whose two ends are interior keys: there both curves share both tangents.
    for f0, f1 in zip(frames[1:-2], frames[2:-1]):
        probe = np.linspace(f0, f1, 17)
        np.testing.assert_allclose([animated.value_at(t) for t in probe], pchip(probe), rtol=1e-9, atol=1e-9)
