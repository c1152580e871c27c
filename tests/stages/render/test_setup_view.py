"""The focal-plane setup view: colours and tint strength at known pixels."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.errors import InputError
from focuspull.stages.render.setup_view import focal_plane_setup


def _grey(height=4, width=8, level=0.5, channels=3):
    return np.full((height, width, channels), level, np.float32)


def test_front_red_in_focus_green_behind_blue():
    coc = np.array([[-6.0, -0.3, 0.0, 0.4, 6.0, np.nan]], np.float32)
    out = focal_plane_setup(_grey(1, 6), coc, in_focus_px=0.5)
    assert out.shape == (1, 6, 3) and out.dtype == np.float32
    r, g, b = out[0, 0]
    assert r > 0.45 and g == pytest.approx(b) and g < 0.5 * r          # in front: red
    for i in (1, 2, 3):                                                  # in focus: green
        r, g, b = out[0, i]
        assert g > 0.45 and r == pytest.approx(b) and r < 0.5 * g
    r, g, b = out[0, 4]
    assert b > 0.45 and r == pytest.approx(g) and r < 0.5 * b            # behind: blue
    np.testing.assert_allclose(out[0, 5], [0.5, 0.5, 0.5], rtol=1e-6)    # no CoC: plain luma


def test_tint_grows_with_distance_from_focus():
    coc = np.array([[1.0, 4.0, 10.0, 40.0, -1.0, -10.0]], np.float32)
    out = focal_plane_setup(_grey(1, 6), coc, in_focus_px=0.5, full_tint_px=16.0)
    behind_saturation = [1.0 - out[0, i, 0] / out[0, i, 2] for i in range(4)]
    assert behind_saturation == sorted(behind_saturation)
    assert behind_saturation[0] < behind_saturation[2] - 0.2
    assert out[0, 3, 0] == pytest.approx(0.0, abs=1e-6)  # full tint beyond full_tint_px
    front_saturation = [1.0 - out[0, i, 2] / out[0, i, 0] for i in (4, 5)]
    assert front_saturation[0] < front_saturation[1]


def test_brightness_follows_image_luminance():
    image = _grey(1, 3)
    image[0, 1] = [1.0, 0.0, 0.0]  # pure red: Y = 0.2126
    image[0, 2] = [0.0, 0.0, 0.0]
    coc = np.zeros((1, 3), np.float32)  # all in focus
    out = focal_plane_setup(image, coc)
    assert out[0, 1, 1] == pytest.approx(0.2126 / 0.5 * out[0, 0, 1], rel=1e-5)
    assert np.all(out[0, 2] == 0.0)
    # RGBA input: alpha does not change the view.
    rgba = np.concatenate([image, np.full((1, 3, 1), 0.25, np.float32)], axis=-1)
    np.testing.assert_array_equal(focal_plane_setup(rgba, coc), out)


def test_shape_mismatch_raises_with_hint():
    with pytest.raises(InputError) as info:
        focal_plane_setup(_grey(4, 8), np.zeros((4, 7), np.float32))
    assert info.value.hint
