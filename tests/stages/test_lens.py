import numpy as np
import pytest

from focuspull.errors import DepthError, LensError
from focuspull.stages.lens import ArtisticLens, LinearLens, ThinLens, coc_from_depth, disparity_from_depth


def test_thin_lens_k_matches_the_textbook_formula():
    lens = ThinLens(focal_length_mm=50, fstop=2.0, sensor_width_mm=36, focus_distance_m=3.0)
    # Blur-disc diameter on the sensor for an object at 6 m (textbook thin-lens form):
    f, n, s_f, s = 0.05, 2.0, 3.0, 6.0
    diameter_m = (f / n) * f / (s_f - f) * abs(s - s_f) / s
    radius_px = diameter_m / 2 / 0.036 * 1920
    coc = coc_from_depth(np.array([[6.0]], np.float32), lens)
    assert coc.shape == (1, 1)
    # coc_from_depth uses the image width, here 1 px: scale by 1920.
    assert abs(coc[0, 0] * 1920 - radius_px) / radius_px < 1e-4
    assert coc[0, 0] > 0  # behind the focal plane -> positive


def test_signs_and_focal_plane():
    lens = ThinLens(focus_distance_m=2.0)
    depth = np.array([[1.0, 2.0, 4.0, np.inf]], np.float32)
    coc = coc_from_depth(depth, lens)
    assert coc[0, 0] < 0 and coc[0, 1] == pytest.approx(0, abs=1e-6) and 0 < coc[0, 2] < coc[0, 3]


def test_depth_conventions_agree():
    depth = np.array([[0.5, 1.0, 2.0, 8.0]], np.float32)
    lens = ThinLens(focus_distance_m=1.5)
    a = coc_from_depth(depth, lens, "depth")
    b = coc_from_depth(1.0 / depth, lens, "far=0")
    assert np.allclose(a, b, rtol=1e-5)
    direct = coc_from_depth(a, lens, "direct")
    assert np.allclose(direct, a)


def test_artistic_lens_size_is_the_blur_at_infinity():
    lens = ArtisticLens(size_px=12.0, focus_disparity=0.5)
    coc = coc_from_depth(np.array([[0.0, 0.5, 1.0]], np.float32), lens, "disparity_norm", max_radius_px=10)
    assert coc[0, 0] == pytest.approx(10.0)  # 12 px at infinity, capped by max size
    assert coc[0, 1] == pytest.approx(0.0)
    assert coc[0, 2] == pytest.approx(-10.0)  # near blurs as much, capped
    linear = coc_from_depth(np.array([[0.25]], np.float32), LinearLens(20.0, 0.5), "disparity_norm")
    assert linear[0, 0] == pytest.approx(5.0)


def test_bad_depth_is_reported_or_treated_on_purpose():
    depth = np.ones((4, 5), np.float32)
    depth[1, 2] = -1
    depth[3, 0] = np.nan
    with pytest.raises(DepthError, match=r"2 invalid .*first at x=2, y=1"):
        disparity_from_depth(depth)
    d = disparity_from_depth(depth, bad_depth="far")
    assert d[1, 2] == 0 and d[3, 0] == 0 and d[0, 0] == 1
    assert disparity_from_depth(np.array([[np.inf]], np.float32))[0, 0] == 0  # inf = infinitely far


def test_impossible_lenses_are_refused():
    with pytest.raises(LensError, match="focal length"):
        ThinLens(focal_length_mm=50, focus_distance_m=0.04)
    with pytest.raises(LensError):
        ThinLens(fstop=0)
    with pytest.raises(LensError, match="metric depth"):
        coc_from_depth(np.ones((2, 2), np.float32), ThinLens(), "disparity_norm")


def test_numpy_scalars_are_accepted_and_strings_are_not():
    lens = ThinLens(np.float32(50), np.float64(2.8), np.int64(36), np.float32(3.0))
    assert lens.k_px(100) > 0
    with pytest.raises(LensError):
        ThinLens(fstop="2.8")


def test_cg_camera_drops_the_focus_breathing_factor():
    real = ThinLens(85, 1.4, 36, 2.0)
    cg = ThinLens(85, 1.4, 36, 2.0, cg_camera=True)
    assert cg.k_px(384) / real.k_px(384) == pytest.approx(1 - 0.085 / 2.0)


def test_nonsense_settings_are_refused_and_messages_name_what_is_wrong():
    with pytest.raises(LensError, match="max"):
        coc_from_depth(np.ones((2, 2), np.float32), ThinLens(), max_radius_px=-5)
    with pytest.raises(DepthError, match="bad_depth"):
        coc_from_depth(np.ones((2, 2), np.float32), ThinLens(), "direct", bad_depth="nonsense")
    with pytest.raises(DepthError, match=r"invalid \(infinite\)"):
        disparity_from_depth(np.array([[1.0, np.inf]], np.float32), "far=0")


def test_direct_coc_far_gives_bad_pixels_the_farthest_blur():
    coc = np.array([[1.0, 7.5, np.nan, -3.0]], np.float32)
    out = coc_from_depth(coc, None, "direct", bad_depth="far")
    assert out.tolist() == [[1.0, 7.5, 7.5, -3.0]]


# --- ZDefocus / Maya depth spellings and the in-focus range (dof) ------------------------------
from focuspull.stages.lens import coc_from_disparity, in_focus_band, normalise_depth_math  # noqa: E402


@pytest.mark.parametrize("spelling, name", [("far = 0", "far=0"), ("far=0", "far=0"), ("Far = -0", "far=-0"),
                                            ("far = -0", "far=-0"), ("depth", "depth"), ("direct", "direct"),
                                            ("1/z", "far=0")])
def test_zdefocus_and_maya_spellings(spelling, name):
    assert normalise_depth_math(spelling) == name


def test_maya_negative_reciprocal_depth_equals_nuke_far_zero():
    z = np.array([[0.5, 2.0], [8.0, np.inf]], np.float32)
    nuke = disparity_from_depth((1.0 / z).astype(np.float32), "far = 0")
    maya = disparity_from_depth((-1.0 / z).astype(np.float32), "far = -0")
    np.testing.assert_array_equal(nuke, maya)
    np.testing.assert_allclose(nuke, [[2.0, 0.5], [0.125, 0.0]])
    with pytest.raises(DepthError):  # positive values are not Maya's -1/z
        disparity_from_depth(np.array([[0.5]], np.float32), "far=-0")


def test_in_focus_range_keeps_a_band_sharp_and_blurs_from_its_edges():
    lo, hi = in_focus_band(1.0 / 4.0, 2.0, "depth")  # 3 m .. 5 m stay sharp
    assert (lo, hi) == pytest.approx((1 / 5.0, 1 / 3.0))
    distances = np.array([[2.0, 3.0, 4.0, 4.9, 5.0, 10.0]], np.float32)
    coc = coc_from_disparity(1.0 / distances, 0.25, 100.0, in_focus=(lo, hi))
    assert coc[0, 1:5] == pytest.approx([0, 0, 0, 0], abs=1e-5)
    assert coc[0, 0] == pytest.approx(100.0 * (1 / 3.0 - 1 / 2.0), rel=1e-5)  # in front, from the near edge
    assert coc[0, 5] == pytest.approx(100.0 * (1 / 5.0 - 1 / 10.0), rel=1e-5)  # behind, from the far edge
    plain = coc_from_disparity(1.0 / distances, 0.25, 100.0)
    assert np.all(np.abs(coc) <= np.abs(plain) + 1e-6) and abs(plain[0, 3]) > 1.0
    assert in_focus_band(0.5, 0.2, "far=0") == pytest.approx((0.4, 0.6))
    assert in_focus_band(0.5, 0.0, "depth") == (0.5, 0.5)
    assert in_focus_band(1.0, 4.0, "depth")[1] == float("inf")  # the band reaches the camera
