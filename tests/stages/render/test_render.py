"""Physics checks of the layered renderer: a wrong renderer fails these."""
import math

import numpy as np
import pytest

from focuspull.stages.aperture import Aperture
from focuspull.errors import DepthError, InputError
from focuspull.stages.lens import ThinLens
from focuspull.stages.render.layered import Highlights, render_coc, render_frame
from reference_render import reference_render

BG = 0.01


def _point_scene(h=160, w=160, energy=1000.0, at=(80, 80)):
    img = np.full((h, w, 3), BG, np.float32)
    img[at] = energy
    return img


def _spot_radius(out, img):
    """Radius of a uniform spot from its energy and plateau height (robust to soft edges)."""
    excess = out[..., 0] - BG
    energy = excess.sum()
    cy, cx = np.unravel_index(np.argmax(excess), excess.shape)
    peak = np.median(excess[excess > 0.5 * excess.max()])
    return math.sqrt(energy / (math.pi * peak))


@pytest.mark.parametrize("depth_m", [12.0, 1.2, 40.0, 0.6])
def test_point_light_disc_has_thin_lens_diameter_and_keeps_energy(depth_m):
    lens = ThinLens(focal_length_mm=100, fstop=1.4, sensor_width_mm=24, focus_distance_m=2.0)
    img = _point_scene()
    depth = np.full(img.shape[:2], depth_m, np.float32)
    out = render_frame(img, depth, lens)
    expected = lens.k_px(img.shape[1]) * abs(1 / 2.0 - 1 / depth_m)
    assert 3 < expected < 40
    assert abs(2 * _spot_radius(out, img) - 2 * expected) < 0.5
    assert abs(out.sum() - img.sum()) / img.sum() < 0.01


def _edge_radius(spot, cy, cx, n=360):
    """Distance from the centre to the spot's half-height edge in n directions (ccw on screen)."""
    half = 0.5 * np.median(spot[spot > 0.5 * spot.max()])
    steps = np.arange(0, min(spot.shape) / 2 - 1, 0.05)
    radii = []
    for phi in np.linspace(0, 2 * np.pi, n, endpoint=False):
        y, x = cy - steps * math.sin(phi), cx + steps * math.cos(phi)
        y0, x0 = y.astype(int), x.astype(int)
        fy, fx = y - y0, x - x0
        v = (spot[y0, x0] * (1 - fy) * (1 - fx) + spot[y0 + 1, x0] * fy * (1 - fx)
             + spot[y0, x0 + 1] * (1 - fy) * fx + spot[y0 + 1, x0 + 1] * fy * fx)
        radii.append(steps[np.argmax(v < half)])
    return np.array(radii)


@pytest.mark.parametrize("blades,rotation", [(6, 0.0), (6, 20.0), (5, 10.0), (8, 30.0)])
def test_polygon_aperture_has_blade_count_and_rotation(blades, rotation):
    img = _point_scene()
    coc = np.full(img.shape[:2], 20.0, np.float32)
    out = render_coc(img, coc, aperture=Aperture(blades=blades, rotation_deg=rotation))
    radius = _edge_radius(out[..., 0] - BG, 80, 80)
    harmonics = np.fft.rfft(radius - radius.mean())
    # The outline of an n-bladed spot repeats n times around the circle.
    assert np.argmax(np.abs(harmonics[3:13])) + 3 == blades
    # Its vertices (largest radius) sit at the rotation angle, modulo the blade angle.
    vertex_deg = -np.degrees(np.angle(harmonics[blades])) / blades
    sector = 360.0 / blades
    err = (vertex_deg - rotation) % sector
    assert min(err, sector - err) < 2.0
    assert abs(out.sum() - img.sum()) / img.sum() < 0.01


def test_focal_plane_is_returned_unchanged():
    rng = np.random.default_rng(1)
    img = rng.random((96, 128, 3), dtype=np.float32) * 4
    coc = np.zeros((96, 128), np.float32)
    coc[:, 96:] = 9.0  # a blurred region far to the right, behind focus
    out = render_coc(img, coc)
    assert np.abs(out[:, :90] - img[:, :90]).max() < 1e-4
    assert np.abs(out[:, 100:] - img[:, 100:]).max() > 0.05  # and the rest did blur


def test_sharp_foreground_gets_no_background_over_it():
    rng = np.random.default_rng(2)
    h, w = 96, 128
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.random((h, w, 3)) * 0.2 + np.array([0.1, 0.1, 0.8])  # textured blue background
    img[:, :64] = rng.random((h, 64, 3)) * 0.2 + np.array([0.9, 0.2, 0.1])  # textured red foreground
    coc = np.full((h, w), 12.0, np.float32)
    coc[:, :64] = 0.0
    out = render_coc(img, coc)
    inside = slice(None), slice(0, 62)  # 2 px inside the edge and beyond
    rel = np.abs(out[inside] - img[inside]) / np.abs(img[inside])
    assert rel.max() < 0.01
    # ...and the background did blur right up to the edge, without foreground colour in it.
    assert out[:, 66:, 0].max() < 0.35


def test_blurred_foreground_is_semi_transparent_without_halo():
    h, w = 96, 128
    fg, bg = np.array([0.9, 0.6, 0.1], np.float32), np.array([0.1, 0.3, 0.7], np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    img[:, :60] = fg
    coc = np.zeros((h, w), np.float32)
    coc[:, :60] = -10.0  # near, blurred; background in focus
    out = render_coc(img, coc)
    row = out[48]
    # The transition band spans both sides of the edge...
    t = (row[:, 0] - bg[0]) / (fg[0] - bg[0])
    assert 0.3 < t[57] < 0.95, "background must show through just inside the foreground edge"
    assert 0.05 < t[62] < 0.7, "foreground must spread over the background outside the edge"
    assert np.all(np.diff(t[40:80]) <= 1e-3), "a monotonic blend, no ringing"
    # ...and never leaves the range of the two colours (no halo).
    lo, hi = np.minimum(fg, bg), np.maximum(fg, bg)
    assert np.all(out >= lo - 0.01) and np.all(out <= hi + 0.01)


def test_more_blur_as_the_fstop_opens():
    rng = np.random.default_rng(3)
    img = rng.random((64, 64, 3), dtype=np.float32)
    depth = np.full((64, 64), 10.0, np.float32)
    detail = []
    for fstop in (16.0, 5.6, 2.0, 1.4):
        out = render_frame(img, depth, ThinLens(50, fstop, 36, 2.0))
        detail.append(np.abs(np.diff(out[16:48, 16:48], axis=1)).mean())
    assert all(a > b for a, b in zip(detail, detail[1:]))


def _layered_scene(seed, h=56, w=72):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 2).astype(np.float32)
    img[rng.random((h, w)) > 0.995] = 40.0  # highlights
    yy, xx = np.mgrid[0:h, 0:w]
    coc = (6.0 * (yy / h) - 2.0).astype(np.float32)  # a slanted ground plane
    coc[(yy - 20) ** 2 + (xx - 20) ** 2 < 120] = -4.6  # a near disc, blurred
    coc[10:40, 45:55] = 0.0  # an in-focus bar
    return img, coc


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_render_equals_float64_reference(seed):
    img, coc = _layered_scene(seed)
    ref = reference_render(img, coc, Aperture(blades=6, rotation_deg=15))
    out = render_coc(img, coc, aperture=Aperture(blades=6, rotation_deg=15), level_radius_px=float("inf"))
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_coarse_levels_stay_close_to_full_resolution():
    img, coc = _layered_scene(3, 96, 128)
    coc = coc * 5  # radii up to ~20 px: some planes run on coarser grids
    full = render_coc(img, coc, level_radius_px=float("inf"))
    fast = render_coc(img, coc, level_radius_px=4.0)
    assert np.abs(fast - full).mean() < 0.02 * np.abs(full).mean()


def test_alpha_passes_through():
    h, w = 48, 64
    img = np.zeros((h, w, 4), np.float32)
    img[:, :, :3] = 0.25
    img[:, :, 3] = 0.5  # premultiplied: colour 0.5 at 50 % opacity
    img[:, 32:, 3] = 1.0
    img[:, 32:, :3] = 0.8
    coc = np.full((h, w), 5.0, np.float32)
    out = render_coc(img, coc)
    assert out.shape == (h, w, 4)
    assert np.allclose(out[:, :20, 3], 0.5, atol=1e-4)
    assert np.allclose(out[:, 44:, 3], 1.0, atol=1e-4)
    assert np.all(np.diff(out[24, 20:44, 3]) >= -1e-5)  # alpha blends monotonically across the edge


def test_highlights_bloom_recovers_bokeh_energy():
    img = np.full((64, 64, 3), 0.1, np.float32)
    img[32, 32] = 1.0  # a clipped highlight in display-referred input
    coc = np.full((64, 64), 6.0, np.float32)
    plain = render_coc(img, coc)
    bloom = render_coc(img, coc, highlights=Highlights(threshold=0.5, gain=8.0))
    assert bloom.sum() > plain.sum() + 3.0  # 1 + 8 * 1.0 -> 9x the highlight's energy
    assert np.allclose(bloom[:8, :8], plain[:8, :8])


def test_bad_input_errors_say_what_and_where():
    img = np.zeros((8, 10, 3), np.float32)
    depth = np.full((8, 10), 5.0, np.float32)
    depth[3, 4] = np.nan
    with pytest.raises(DepthError, match=r"1 invalid .*x=4, y=3"):
        render_frame(img, depth, ThinLens())
    with pytest.raises(InputError, match="10x8"):
        render_coc(img, np.zeros((8, 9), np.float32))
    with pytest.raises(InputError, match="H x W x 3"):
        render_coc(np.zeros((8, 10), np.float32), np.zeros((8, 10), np.float32))
    out = render_frame(img, depth, ThinLens(), bad_depth="far")  # documented treatment instead
    assert np.isfinite(out).all()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_cuda_render_matches_cpu():
    img, coc = _layered_scene(4, 96, 128)
    coc = coc * 4
    cpu = render_coc(img, coc, aperture=Aperture(blades=7))
    gpu = render_coc(img, coc, aperture=Aperture(blades=7), device="cuda")
    assert np.abs(cpu - gpu).max() < 1e-3 * max(1.0, np.abs(cpu).max())


@pytest.mark.parametrize("radius,distance", [(30.0, 10), (40.0, 0), (100.0, 60), (128.0, 100)])
def test_bokeh_ball_at_the_frame_edge_is_cut_not_brightened(radius, distance):
    """A disc reaching past the frame keeps its brightness; only what is inside stays."""
    n = int(2 * radius + 60)
    img = np.full((n, n, 3), BG, np.float32)
    energy = 1e5
    img[n // 2, distance] = energy
    out = render_coc(img, np.full((n, n), radius, np.float32))
    plateau = energy / (math.pi * radius**2)
    # Fraction of the disc inside the frame (the frame's left edge is at x = -0.5).
    xs = np.linspace(-radius, radius, 20001)
    chord = 2 * np.sqrt(np.maximum(radius**2 - xs**2, 0))
    inside = (chord * (xs >= -distance - 0.5)).sum() / chord.sum()
    light = out[..., 0].sum() - BG * n * n
    assert abs(light / (energy * inside) - 1) < 0.02
    # Right at the frame edge the disc is as bright as at its centre.
    assert abs((out[n // 2, 0, 0] - BG) / plateau - 1) < 0.05
    assert abs((out[n // 2, distance + 2, 0] - BG) / plateau - 1) < 0.05


def test_uniform_background_stays_uniform_at_the_frame_edge():
    rng = np.random.default_rng(5)
    img = np.full((64, 96, 3), 0.3, np.float32) + rng.normal(0, 0.01, (64, 96, 3)).astype(np.float32)
    out = render_coc(img, np.full((64, 96), 12.0, np.float32))
    assert np.abs(out - 0.3).max() < 0.01


def test_a_bokeh_ball_does_not_depend_on_unrelated_content_at_the_frame_edge():
    """Coarse planes sit on a fixed grid: content elsewhere on the plane must not shift them."""
    h, w = 160, 320
    img = np.full((h, w, 3), 0.02, np.float32)
    img[80, 200] = 500.0
    coc = np.zeros((h, w), np.float32)
    coc[40:120, 150:250] = 30.0  # planes at 30 px run on a 2x coarser grid
    alone = render_coc(img, coc)
    img2, coc2 = img.copy(), coc.copy()
    for x0 in (0, 1, 3):  # something on the same plane at the frame edge, out of reach
        img2[70:90, x0:x0 + 40] = 0.3
        coc2[70:90, x0:x0 + 40] = 30.0
        both = render_coc(img2, coc2)
        assert np.abs(both[40:120, 190:250] - alone[40:120, 190:250]).max() < 1e-5


@pytest.mark.parametrize("far_coc", [31.0, 33.0, 45.0])
def test_a_bokeh_ball_does_not_flicker_when_the_frames_largest_blur_changes(far_coc):
    """The frame's largest CoC sets the padding; the coarse grids must not move with it."""
    h, w = 128, 200
    img = np.full((h, w, 3), 0.02, np.float32)
    img[64, 120] = 500.0
    coc = np.full((h, w), 30.0, np.float32)
    reference = render_coc(img, coc)
    coc2 = coc.copy()
    coc2[2, 2] = far_coc  # one pixel far out of the ball's reach
    changed = render_coc(img, coc2)
    assert np.abs(changed[40:90, 95:145] - reference[40:90, 95:145]).max() < 1e-4


def test_frame_edge_detail_does_not_depend_on_a_far_pixels_blur():
    rng = np.random.default_rng(9)
    h, w = 96, 320
    img = (0.3 + 0.1 * rng.random((h, w, 3))).astype(np.float32)
    img[rng.random((h, w)) > 0.995] = 20.0
    coc = np.full((h, w), 12.0, np.float32)
    base = render_coc(img, coc)
    for patch in (14.0, 20.0, 40.0):
        coc2 = coc.copy()
        coc2[40:44, 300:304] = patch
        out = render_coc(img, coc2)
        assert np.abs(out[:, :40] - base[:, :40]).max() < 1e-4


def test_one_wild_depth_sample_is_refused_with_where_and_what_to_do():
    img = np.full((64, 64, 3), 0.2, np.float32)
    coc = np.full((64, 64), 2.0, np.float32)
    coc[10, 12] = -1500.0  # e.g. a near-clip Z sample
    with pytest.raises(DepthError, match=r"1500 px.*x=12, y=10") as err:
        render_coc(img, coc)
    assert "--max-size" in err.value.hint
    coc[10, 12] = -40.0  # large but possible: renders
    assert np.isfinite(render_coc(img, coc)).all()


def test_flipped_views_and_float64_input_are_accepted_or_refused_cleanly():
    rng = np.random.default_rng(2)
    img = rng.random((40, 50, 3)).astype(np.float32)
    coc = np.full((40, 50), 3.0, np.float32)
    flipped = render_coc(img[:, ::-1], coc[::-1])
    assert np.allclose(flipped, render_coc(np.ascontiguousarray(img[:, ::-1]), coc), atol=1e-6)
    huge = img.astype(np.float64)
    huge[3, 4] = 1e39  # finite in float64, inf in float32
    with pytest.raises(InputError, match="x=4, y=3"):
        render_coc(huge, coc)
    with pytest.raises(InputError):
        render_coc(np.zeros((0, 5, 3), np.float32), np.zeros((0, 5), np.float32))
    with pytest.raises(InputError, match="uint8") as err:  # code values are not light
        render_coc((img * 255).astype(np.uint8), coc)
    assert "to_linear" in err.value.hint


def test_in_focus_pixels_beside_a_slightly_defocused_region_are_bit_exact():
    rng = np.random.default_rng(11)
    img = rng.random((64, 96, 3), dtype=np.float32)
    coc = np.zeros((64, 96), np.float32)
    coc[:, 48:] = 0.6  # splits onto the 1 px plane, which the focal plane does not occlude
    coc[0, 0] = 20.0  # and something far blurred, so the frame is extended and cropped
    out = render_coc(img, coc)
    assert np.array_equal(out[4:, 4:46], img[4:, 4:46])


# -- non-finite output is impossible (issue 13) -------------------------------------------------------
def _ramp_scene(h=24, w=32):
    rng = np.random.default_rng(3)
    image = rng.random((h, w, 3)).astype(np.float32)
    coc = np.tile(np.linspace(-6, 6, w, dtype=np.float32), (h, 1))
    return image, coc


def test_a_highlight_gain_that_overflows_fails_with_the_cause():
    image, coc = _ramp_scene()
    image[5, 5] = 1.0  # above the threshold: boosted by 1e308 -> inf
    with pytest.raises(InputError, match="highlight gain 1e\\+308"):
        render_coc(image, coc, highlights=Highlights(0.5, 1e308))
    out = render_coc(image, coc, highlights=Highlights(0.5, 1000.0))  # the registry's maximum
    assert np.isfinite(out).all()


def test_values_near_the_float32_limit_never_come_back_non_finite():
    image, coc = _ramp_scene()
    image[:, :16] = 3.4e38  # finite, but a sum of two of them is not
    try:
        out = render_coc(image, coc)
    except InputError as exc:
        assert "overflowed" in str(exc)
    else:
        assert np.isfinite(out).all()


def test_a_non_finite_render_fails_with_its_cause():
    from focuspull.stages.render.layered import _check_finite
    image = np.full((4, 5, 3), 3.0e38, np.float32)
    result = image.copy()
    result[2, 3, 1] = np.inf
    with pytest.raises(InputError, match="overflowed at .*1 NaN/inf.*3e\\+38"):
        _check_finite(result, image)
    _check_finite(image, image)  # finite: no error


def test_a_plane_works_only_as_far_beyond_the_frame_as_its_blur_reaches():
    """The frame is extended by the largest blur; a plane blurred less uses only its own reach
    of that extension (cores and crops end there; what lies farther cannot reach the frame)."""
    import torch

    from focuspull.stages.render.layered import _PlaneTiles

    height, width, border, halo = 1160, 2000, 40, 15
    coordinate = torch.full((1, 1, height, width), 3.0)  # every pixel on plane 3
    rectangles = _PlaneTiles.of(coordinate, on_stack=True).regions(3, halo, border=border)
    reach = (border - halo, height - border + halo, border - halo, width - border + halo)
    covered = np.zeros((height, width), bool)
    for crop, core, owned in rectangles:
        assert crop[0] >= reach[0] and crop[1] <= reach[1] and crop[2] >= reach[2] and crop[3] <= reach[3]
        assert crop[0] <= core[0] and core[1] <= crop[1] and crop[2] <= core[2] and core[3] <= crop[3]
        covered[core[0]:core[1], core[2]:core[3]] = True
    assert covered[reach[0]:reach[1], reach[2]:reach[3]].all()  # the whole reach, nothing lost
    assert not covered[:reach[0]].any() and not covered[:, reach[3]:].any()
    # Without a border (or a blur that needs all of it) every tile is worked, as before.
    full = _PlaneTiles.of(coordinate, on_stack=True).regions(3, halo)
    assert min(c[0] for _, c, _ in full) == 0 and max(c[3] for _, c, _ in full) == width
