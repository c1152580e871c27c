"""bench/metrics.py (PSNR, SSIM, bokeh radius) and the committed Cycles ground truth."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import metrics  # noqa: E402  (bench/metrics.py)
import quality  # noqa: E402  (bench/quality.py; imports torch only when it renders)

from focuspull.stages.lens import ThinLens  # noqa: E402


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    rng = np.random.default_rng(0)
    image = (rng.random((24, 30, 3)) * 3).astype(np.float32)
    assert metrics.psnr(image, image.copy()) == math.inf
    assert metrics.ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


def test_psnr_hand_computed_cases():
    black = np.zeros((4, 4, 3), np.float32)
    quarter_white = black.copy()
    quarter_white[:2, :2] = 1.0  # MSE = 1/4 -> 10 log10(4) dB
    assert metrics.psnr(quarter_white, black) == pytest.approx(10 * math.log10(4), abs=1e-9)
    # Display transform: linear 0.5**2.2 shows as 0.5, so MSE = 0.25 again.
    mid_grey = np.full((4, 4, 3), 0.5 ** 2.2, np.float32)
    assert metrics.psnr(mid_grey, black) == pytest.approx(10 * math.log10(4), abs=1e-5)
    # Linear 0.25 shows as 0.25 ** (1/2.2) = 0.53254...
    quarter = np.full((4, 4, 3), 0.25, np.float32)
    assert metrics.psnr(quarter, black) == pytest.approx(-20 * math.log10(0.25 ** (1 / 2.2)), abs=1e-5)
    # Scene-linear values above 1 clip to white on a display.
    assert metrics.psnr(np.full((4, 4, 3), 7.0, np.float32), np.ones((4, 4, 3), np.float32)) == math.inf


def test_ssim_of_constant_images_is_the_luminance_term():
    # No variance in either image: SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = 0.01^2.
    a, b = 0.3, 0.6  # display values
    x = np.full((16, 16, 3), a ** 2.2, np.float32)
    y = np.full((16, 16, 3), b ** 2.2, np.float32)
    c1 = 0.01 ** 2
    assert metrics.ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-6)


def naive_ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    """Window by window with an explicit 11x11 Gaussian (sigma 1.5), Wang et al. eq. 13."""
    g = np.exp(-(np.arange(11) - 5.0) ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx = (win * (px - mx) ** 2).sum()
            vy = (win * (py - my) ** 2).sum()
            cxy = (win * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_windowed_definition():
    rng = np.random.default_rng(5)
    x = rng.random((17, 21, 2)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32) * 0.8
    dx, dy = metrics.display_referred(x), metrics.display_referred(y)
    expected = np.mean([naive_ssim_plane(dx[..., c], dy[..., c]) for c in range(2)])
    assert metrics.ssim(x, y) == pytest.approx(expected, abs=1e-9)


def test_noisier_images_score_lower():
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:48, 0:64]
    clean = np.stack([0.2 + 0.15 * np.sin(xx / 5.0), 0.3 + 0.1 * np.cos(yy / 7.0), 0.25 + 0 * xx], -1)
    clean = clean.astype(np.float32)
    scores = []
    for sigma in (0.005, 0.02, 0.08):
        noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
        scores.append((metrics.psnr(noisy, clean), metrics.ssim(noisy, clean)))
    assert scores[0][0] > scores[1][0] > scores[2][0]
    assert scores[0][1] > scores[1][1] > scores[2][1]
    assert scores[2][1] < 0.9


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


@pytest.mark.parametrize("radius", [5.5, 11.2])
def test_bokeh_ball_radius_of_a_drawn_disc(radius):
    yy, xx = np.mgrid[0:80, 0:80]
    # Anti-aliased disc on a dim background, 4x supersampled.
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    cover = np.zeros((80, 80))
    for sy in sub:
        for sx in sub:
            cover += np.hypot(xx + sx - 40.3, yy + sy - 39.6) <= radius
    image = (0.05 + 8.0 * cover / 16)[..., None].repeat(3, -1)
    assert metrics.bokeh_ball_radius_px(image, (40.3, 39.6), int(radius * 1.6)) == pytest.approx(radius, abs=0.25)


@pytest.mark.parametrize("blades, vertex_deg", [(6, 12.0), (6, 47.0), (5, 30.0)])
def test_polygon_vertex_angle_of_drawn_polygons(blades, vertex_deg):
    yy, xx = np.mgrid[0:60, 0:150]
    image = np.full((60, 150, 3), 0.02)
    centres = [(30.0, 29.0), (75.0, 30.0), (120.0, 29.0)]
    for cx, cy in centres:
        dx, dy = xx - cx, cy - yy  # y up, as on screen
        inside = np.ones_like(dx, dtype=bool)
        for k in range(blades):  # inside every edge; edge normals sit between the vertices
            normal = math.radians(vertex_deg + 180 / blades + 360 * k / blades)
            inside &= dx * math.cos(normal) + dy * math.sin(normal) <= 13 * math.cos(math.pi / blades)
        image[inside] = 5.0
    assert metrics.polygon_vertex_angle_deg(image, centres, blades, 20) == pytest.approx(vertex_deg, abs=2.0)


# --------------------------------------------------------------------------- committed ground truth

SCENES = BENCH / "scenes"


def _read_exr(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    oiio = pytest.importorskip("OpenImageIO")
    buf = oiio.ImageBuf(str(path))
    return buf.get_pixels(oiio.FLOAT), tuple(buf.spec().channelnames)


def _scene(name: str) -> dict:
    path = SCENES / name / "scene.json"
    if not path.exists():
        pytest.skip(f"{path} not rendered (bench/cycles/make_scenes.py)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", ["objects", "highlights", "occluders", "hexagon"])
def test_committed_scene_is_complete_and_planar(name):
    meta = _scene(name)
    pinhole, channels = _read_exr(SCENES / name / "pinhole.exr")
    assert channels == ("R", "G", "B", "A", "Z")
    assert pinhole.shape == (meta["height"], meta["width"], 5)
    for other in ("cycles_dof.exr", "blender_defocus.exr"):
        image, ch = _read_exr(SCENES / name / other)
        assert ch == ("R", "G", "B", "A") and image.shape[:2] == pinhole.shape[:2]
        assert np.all(np.isfinite(image))
    z = pinhole[..., 4]
    assert np.all(z > 0) and np.all(np.isfinite(z))
    # Every scene's farthest surface is a wall facing the camera: with planar depth it reads
    # one value (to half-float precision) across the frame, ray distance would grow off-axis.
    far = z > 0.99 * z.max()
    assert far[:, 0].any() and far[:, -1].any()
    assert np.ptp(z[far]) <= 0.01 * z.max()


@pytest.mark.parametrize("name", ["highlights", "hexagon"])
def test_cycles_bokeh_ball_radius_matches_thin_lens(name):
    """A far point emitter renders in Cycles as a ball of the thin-lens CoC *radius*.

    Cycles keeps the sensor at the focal length whatever the focus distance, so its CoC is
    the thin lens' ``k_px |1/S_f - 1/S|`` without the ``S_f / (S_f - f)`` factor (4.4 % here).
    A bladed aperture is a polygon inscribed in that radius; the measurement reads the radius of
    the disc of equal area.  The emitters' own ~4 px size pulls the half-level contour of the
    ball ~2.5 % inwards (disc of 11.5 px convolved with a disc of 4 px measures 11.23 px).
    """
    meta = _scene(name)
    lens = ThinLens(meta["focal_length_mm"], meta["fstop"], meta["sensor_width_mm"], meta["focus_distance_m"])
    dof, _ = _read_exr(SCENES / name / "cycles_dof.exr")
    pinhole, _ = _read_exr(SCENES / name / "pinhole.exr")
    thin_lens_radius = lens.k_px(meta["width"]) * abs(1 / meta["focus_distance_m"] - 1 / meta["emitter_depth_m"])
    cycles_radius = thin_lens_radius * (1 - meta["focal_length_mm"] / 1000 / meta["focus_distance_m"])
    n = meta["blades"]
    if n:
        cycles_radius *= math.sqrt(n * math.sin(2 * math.pi / n) / (2 * math.pi))  # equal-area disc
    radii = []
    for cx, cy in meta["emitter_centres_px"]:
        if pinhole[int(round(cy)), int(round(cx)), 4] < 0.9 * meta["emitter_depth_m"]:
            continue  # hidden behind the in-focus objects
        radii.append(metrics.bokeh_ball_radius_px(dof, (cx, cy), int(1.5 * thin_lens_radius)))
    assert len(radii) >= 6
    assert np.median(radii) == pytest.approx(cycles_radius, rel=0.04)
    # Radius, not diameter: a factor-2 error in the lens constant could never pass this.
    assert np.median(radii) == pytest.approx(thin_lens_radius * (1 if n == 0 else 0.91), rel=0.1)


def test_cycles_hexagon_orientation_convention():
    """Cycles puts a polygon vertex at rotation + 180/blades (counter-clockwise on screen);
    quality.py hands focuspull that angle, make_scenes.py gives it to the Defocus node."""
    meta = _scene("hexagon")
    dof, _ = _read_exr(SCENES / "hexagon" / "cycles_dof.exr")
    pinhole, _ = _read_exr(SCENES / "hexagon" / "pinhole.exr")
    visible = [c for c in meta["emitter_centres_px"]
               if pinhole[int(round(c[1])), int(round(c[0])), 4] > 0.9 * meta["emitter_depth_m"]]
    measured = metrics.polygon_vertex_angle_deg(dof, visible, 6, 17)
    expected = quality.focuspull_rotation_deg(meta) % 60
    assert abs((measured - expected + 30) % 60 - 30) < 3.0


# --------------------------------------------------------------------------- quality floor

# PSNR (dB) / SSIM of focuspull vs Cycles (Cycles camera model) that must not regress; measured
# 40.48 / 0.9922 objects, 24.55 / 0.9755 highlights, 36.86 / 0.9708 occluders, 25.34 / 0.9781 hexagon.
QUALITY_FLOOR = {"objects": (40.2, 0.990), "highlights": (24.3, 0.973),
                 "occluders": (36.5, 0.968), "hexagon": (25.0, 0.976)}


@pytest.mark.parametrize("name", sorted(QUALITY_FLOOR))
def test_focuspull_keeps_quality_floor_against_cycles(name):
    _scene(name)
    result = quality.evaluate_scene(name)["methods"]
    psnr_floor, ssim_floor = QUALITY_FLOOR[name]
    assert result["focuspull"]["psnr_db"] >= psnr_floor
    assert result["focuspull"]["ssim"] >= ssim_floor
    # Any blur model must beat no blur at all by a wide margin, and occlusion-aware layering
    # must not lose to the scatter baseline that has no occlusion handling.
    assert result["focuspull"]["psnr_db"] > result["pinhole"]["psnr_db"] + 8
    # The target: ahead of both Blender's Defocus node and the scatter baseline.
    for baseline in ("scatter", "blender_defocus"):
        assert result["focuspull"]["psnr_db"] > result[baseline]["psnr_db"]
        assert result["focuspull"]["ssim"] > result[baseline]["ssim"]
