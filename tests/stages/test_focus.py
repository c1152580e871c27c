"""Focus from a point, a matte, a tracked point, and focus smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.errors import DepthError, InputError
from focuspull.stages.focus import (focus_disparity_at, focus_disparity_from_matte, smooth_focus,
                             track_point, weighted_median)


def _two_plane_depth():
    d = np.full((40, 60), 0.2, np.float32)
    d[:, 30:] = 0.8  # right half is near
    return d


def test_point_pick_uses_pixel_centre_convention_and_median():
    d = _two_plane_depth()
    assert focus_disparity_at(d, 10, 20) == pytest.approx(0.2)
    assert focus_disparity_at(d, 50, 20) == pytest.approx(0.8)
    # x = 29.4 is in pixel 29 (far), x = 29.6 in pixel 30 (near); r = 0 reads one pixel.
    assert focus_disparity_at(d, 29.4, 5, radius_px=0) == pytest.approx(0.2)
    assert focus_disparity_at(d, 29.6, 5, radius_px=0) == pytest.approx(0.8)
    # Near the edge the median follows the majority of the window: 6 near columns of 9.
    assert focus_disparity_at(d, 32, 5, radius_px=4) == pytest.approx(0.8)
    assert focus_disparity_at(d, 27, 5, radius_px=4) == pytest.approx(0.2)


def test_point_pick_is_robust_to_outliers_nan_and_the_border():
    d = _two_plane_depth()
    d[18:23, 8:13] = np.nan
    d[20, 10] = 100.0  # a single wild value
    d[19, 9] = -5.0
    assert focus_disparity_at(d, 10, 20, radius_px=4) == pytest.approx(0.2)
    # The corner window is clipped to the image, not padded.
    assert focus_disparity_at(d, 0, 0, radius_px=4) == pytest.approx(0.2)
    assert focus_disparity_at(d, 59, 39, radius_px=4) == pytest.approx(0.8)


def test_point_pick_errors():
    d = _two_plane_depth()
    with pytest.raises(InputError) as info:
        focus_disparity_at(d, 60, 5)
    assert "outside" in info.value.message and info.value.hint
    hole = np.full((10, 10), np.nan, np.float32)
    with pytest.raises(DepthError) as info:
        focus_disparity_at(hole, 5, 5)
    assert info.value.hint


def test_matte_weighted_median_ignores_soft_spill():
    d = _two_plane_depth()
    matte = np.zeros_like(d)
    matte[10:30, 35:55] = 1.0       # the subject, on the near half
    matte[:, 20:30] = 0.3           # a soft spill over the background
    # Spill weight 0.3*40*10 = 120 < subject 400: the weighted median stays on the subject,
    # while a weighted mean would be pulled toward the background.
    assert focus_disparity_from_matte(d, matte) == pytest.approx(0.8)
    mean = float((d * matte).sum() / matte.sum())
    assert mean < 0.7
    matte[:, 0:30] = 1.0  # now the background outweighs the subject
    assert focus_disparity_from_matte(d, matte) == pytest.approx(0.2)


def test_weighted_median_definition():
    assert weighted_median(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])) == 2.0
    assert weighted_median(np.array([1.0, 5.0]), np.array([1.0, 3.0])) == 5.0
    assert weighted_median(np.array([1.0, 5.0]), np.array([3.0, 1.0])) == 1.0


def test_empty_or_mismatched_matte_raises_input_error():
    d = _two_plane_depth()
    with pytest.raises(InputError) as info:
        focus_disparity_from_matte(d, np.zeros_like(d))
    assert "empty" in info.value.message and info.value.hint
    with pytest.raises(InputError, match="resolution"):
        focus_disparity_from_matte(d, np.ones((10, 10), np.float32))


def _texture_at(xx, yy, seed):
    """Smooth analytic texture, evaluable at any sub-pixel position."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(xx, dtype=np.float64)
    for _ in range(8):
        fx, fy = rng.uniform(-1, 1, 2) / rng.uniform(4, 9)
        out += np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi))
    return 0.3 + 0.25 * out / 8 + 0.25


def _path(t):
    """Known sub-pixel path of the object's centre (pixels, origin top-left centre)."""
    return 60.0 + 2.3 * t + 0.05 * t * t, 45.0 + 8.0 * np.sin(t / 4.0)


def _moving_object_frames(n_frames=16, height=96, width=160):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    background = _texture_at(xx, yy, seed=1)
    frames = {}
    for t in range(n_frames):
        ox, oy = _path(t)
        inside = (xx - ox) ** 2 + (yy - oy) ** 2 < 20 ** 2
        obj = 1.2 * _texture_at(xx - ox, yy - oy, seed=2)  # texture moves with the object
        luma = np.where(inside, obj, background)
        frames[t] = np.stack([luma, 0.8 * luma, 0.6 * luma], axis=-1).astype(np.float32)
    return frames


def test_track_point_follows_known_path_forward_and_backward():
    frames = _moving_object_frames()
    start = 6
    sx, sy = _path(start)
    pick = (sx + 3.0, sy - 2.0)  # a point on the object, off its centre
    track = track_point(frames.__getitem__, start, pick, range(16))
    assert sorted(track) == list(range(16))
    errors = []
    for t, (x, y) in track.items():
        px, py = _path(t)
        errors.append(np.hypot(x - (px + 3.0), y - (py - 2.0)))
    print(f"\ntrack error: max {max(errors):.3f} px, mean {np.mean(errors):.3f} px")
    assert max(errors) < 1.0
    assert track[start] == pick


def test_track_point_refreshes_template_on_a_rotating_object():
    """A point 9 px off the centre of a disc turning 4 deg/frame: the start template
    stops matching after a few frames, so only a refreshed template can follow it."""
    height, width, degrees_per_frame = 96, 160, 4.0
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    background = _texture_at(xx, yy, seed=1)

    def centre(t):
        return 50.0 + 3.0 * t, 48.0

    def truth(t):
        angle = np.deg2rad(degrees_per_frame * t)
        cx, cy = centre(t)
        return cx + 9.0 * np.cos(angle), cy + 9.0 * np.sin(angle)

    frames = {}
    for t in range(16):
        cx, cy = centre(t)
        angle = np.deg2rad(degrees_per_frame * t)
        u, v = xx - cx, yy - cy
        obj = 1.2 * _texture_at(np.cos(angle) * u + np.sin(angle) * v,
                                -np.sin(angle) * u + np.cos(angle) * v, seed=2)
        luma = np.where(u ** 2 + v ** 2 < 24 ** 2, obj, background)
        frames[t] = np.repeat(luma[..., None], 3, axis=-1).astype(np.float32)

    def max_error(**options):
        track = track_point(frames.__getitem__, 0, truth(0), range(16), **options)
        return max(np.hypot(track[t][0] - truth(t)[0], track[t][1] - truth(t)[1]) for t in track)

    assert max_error() < 1.0
    assert max_error(refresh_below=-1.0) > 2.0  # never refreshing loses the point


def test_track_point_depends_only_on_frames_between_start_and_t():
    frames = _moving_object_frames()
    sx, sy = _path(6)
    full = track_point(frames.__getitem__, 6, (sx, sy), range(16))
    part = track_point(frames.__getitem__, 6, (sx, sy), range(3, 11))
    assert all(part[t] == full[t] for t in range(3, 11))


def test_track_point_rejects_start_outside_range():
    frames = _moving_object_frames(n_frames=2)
    with pytest.raises(InputError) as info:
        track_point(frames.__getitem__, 5, (50, 40), [0, 1])
    assert info.value.hint


def test_smooth_focus_reduces_jitter():
    rng = np.random.default_rng(0)
    values = {t: 0.5 + float(rng.normal(0, 0.02)) for t in range(60)}
    values[30] = 0.9  # a one-frame mis-pick
    smoothed = smooth_focus(values, window=5)
    raw = np.array([values[t] for t in range(60)])
    out = np.array([smoothed[t] for t in range(60)])
    assert np.std(np.diff(out)) < 0.3 * np.std(np.diff(raw))
    assert abs(smoothed[30] - 0.5) < 0.03  # the spike is gone, not smeared


def test_smooth_focus_step_reaches_new_value_within_window():
    values = {t: (0.3 if t < 20 else 0.7) for t in range(40)}
    smoothed = smooth_focus(values, window=5)
    assert smoothed[14] == pytest.approx(0.3)
    assert smoothed[25] == pytest.approx(0.7)  # step + window
    ramp = [smoothed[t] for t in range(14, 26)]
    assert all(b >= a for a, b in zip(ramp, ramp[1:]))  # a monotonic rack, no overshoot
    assert 0.3 < smoothed[20] < 0.7


def test_smooth_focus_is_window_local_hence_chunk_invariant():
    rng = np.random.default_rng(2)
    values = {t: float(rng.uniform(0.2, 0.8)) for t in range(50)}
    full = smooth_focus(values, window=4)
    lo, hi = 20, 29
    subset = {t: v for t, v in values.items() if lo - 4 <= t <= hi + 4}
    part = smooth_focus(subset, window=4)
    for t in range(lo, hi + 1):
        assert part[t] == full[t]
    # Window 0 is the identity.
    assert smooth_focus(values, window=0) == values
