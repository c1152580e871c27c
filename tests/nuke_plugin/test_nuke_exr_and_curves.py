"""The node's EXR error words, and curve -> keyframe edge cases (the codec itself: tests/test_exr_lite.py)."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.exr_lite import ExrError
from focuspull.io.images import write_image
from focuspull.spec.keyframes import Animated
from focuspull_nuke import cache
from focuspull_nuke.curves import Curve, to_keyframes


def test_the_cache_refuses_a_write_setting_it_cannot_read_in_the_nodes_words(tmp_path):
    path = str(tmp_path / "p.exr")
    write_image(path, np.ones((4, 4, 3), np.float32), compression="piz")
    with pytest.raises(ExrError, match="piz compression.*set the hidden Write to EXR, scanline, 'Zip \\(1 scanline\\)'"):
        cache.pixel_digest(path)
    (tmp_path / "x.exr").write_bytes(b"not an exr")
    with pytest.raises(ExrError, match="not an OpenEXR.*set the hidden Write"):
        cache.pixel_digest(str(tmp_path / "x.exr"))


def _curve(keys, fn):
    return Curve(tuple(keys), fn)


def test_linear_keys_are_kept_and_anything_nuke_evaluates_differently_is_baked():
    keys = [(1.0, 2.0, "linear"), (5.0, 6.0, "linear")]
    linear = _curve(keys, lambda t: 2.0 + (min(max(t, 1), 5) - 1.0))
    value, baked = to_keyframes(linear, range(1, 8))
    assert value == {"keys": {"1": 2.0, "5": 6.0}, "interpolation": "linear"} and not baked
    # Same keys, but Nuke extrapolates linearly after the last key: baked, exact on every frame.
    extrapolated = _curve(keys, lambda t: 2.0 + (max(t, 1) - 1.0))
    value, baked = to_keyframes(extrapolated, range(1, 8))
    assert baked and all(Animated.from_value(value).value_at(f) == 2.0 + f - 1 for f in range(1, 8))
    smooth = _curve([(1.0, 0.0, "nuke:0"), (4.0, 3.0, "nuke:0")], lambda t: float(t) ** 0.5)
    value, baked = to_keyframes(smooth, range(2, 4), convert=lambda v: 10 - v)
    animated = Animated.from_value(value)
    assert baked and [animated.value_at(f) for f in (1, 2, 3, 4)] == [10 - f ** 0.5 for f in (1, 2, 3, 4)]
