"""The classical scatter baseline (bench/scatter.py) against physics and a naive reference."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import metrics  # noqa: E402  (bench/metrics.py)
import scatter  # noqa: E402  (bench/scatter.py)


def naive_scatter(image: np.ndarray, coc_px: np.ndarray) -> np.ndarray:
    """Pixel-by-pixel reference: each source spreads a soft disc normalised over the infinite grid."""
    h, w, c = image.shape
    num = np.zeros((h, w, c))
    den = np.zeros((h, w))
    ys, xs = np.mgrid[0:h, 0:w]
    for y in range(h):
        for x in range(w):
            r = abs(float(coc_px[y, x]))
            reach = int(math.ceil(r + 1))
            oy, ox = np.mgrid[-reach:reach + 1, -reach:reach + 1]
            total = np.clip(r + 0.5 - np.hypot(oy, ox), 0, 1).sum()
            wgt = np.clip(r + 0.5 - np.hypot(ys - y, xs - x), 0, 1) / total
            num += wgt[..., None] * image[y, x]
            den += wgt
    return (num / den[..., None]).astype(np.float32)


def test_matches_naive_reference_with_varying_coc():
    rng = np.random.default_rng(1)
    image = rng.random((14, 17, 3)).astype(np.float32) * 4
    coc = rng.uniform(-4.5, 4.5, (14, 17)).astype(np.float32)
    coc[3:6, 4:8] = 0.0
    np.testing.assert_allclose(scatter.scatter_render(image, coc), naive_scatter(image, coc), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("radius", [2.0, 5.3, 9.75])
def test_energy_is_conserved_with_uniform_coc(radius):
    rng = np.random.default_rng(2)
    image = np.zeros((80, 90, 4), np.float32)
    for _ in range(6):
        # Point lights (scene-linear >> 1) more than two radii from the borders: near a border
        # fewer sources splat, the weight sum drops below 1 and the division brightens.
        y, x = rng.integers(25, 55), rng.integers(25, 65)
        image[y, x] += rng.uniform(5, 50, 4)
    out = scatter.scatter_render(image, np.full((80, 90), radius, np.float32))
    np.testing.assert_allclose(out.sum(axis=(0, 1)), image.sum(axis=(0, 1)), rtol=1e-4)


@pytest.mark.parametrize("radius", [4.6, 9.2, 14.0])
def test_point_light_becomes_disc_of_its_coc_radius(radius):
    image = np.zeros((61, 61, 3), np.float32)
    image[30, 30] = 1000.0
    coc = np.full((61, 61), -radius, np.float32)  # in front of focus: same disc, sign ignored
    out = scatter.scatter_render(image, coc)
    lit = out[..., 0] > 1e-6
    ys, xs = np.nonzero(lit)
    assert np.hypot(ys - 30, xs - 30).max() < radius + 0.5
    assert metrics.bokeh_ball_radius_px(out, (30, 30), int(radius * 1.6)) == pytest.approx(radius, abs=0.35)
    # Flat-topped: a disc, not a Gaussian.
    inner = np.hypot(*np.mgrid[-30:31, -30:31]) < radius - 1
    assert out[..., 0][inner].std() < 1e-3 * out[..., 0][inner].mean()


def test_in_focus_image_is_unchanged():
    rng = np.random.default_rng(3)
    image = rng.random((32, 40, 3)).astype(np.float32)
    assert np.array_equal(scatter.scatter_render(image, np.zeros((32, 40), np.float32)), image)


def test_in_focus_region_away_from_blur_is_unchanged():
    rng = np.random.default_rng(4)
    image = rng.random((40, 60, 3)).astype(np.float32)
    coc = np.zeros((40, 60), np.float32)
    coc[:, :20] = 6.0  # blurred strip on the left can reach at most 6.5 px to the right
    out = scatter.scatter_render(image, coc)
    assert np.array_equal(out[:, 27:], image[:, 27:])
    assert not np.allclose(out[:, :20], image[:, :20])


def test_no_occlusion_background_bleeds_over_sharp_foreground():
    # The defining flaw of the classical baseline: a blurred bright background spills over an
    # in-focus dark foreground edge (a physically correct renderer keeps it dark).
    image = np.zeros((30, 30, 3), np.float32)
    image[:, 15:] = 10.0
    coc = np.zeros((30, 30), np.float32)
    coc[:, 15:] = 5.0
    out = scatter.scatter_render(image, coc)
    assert out[15, 13, 0] > 0.5


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="H x W x C"):
        scatter.scatter_render(np.zeros((8, 8, 3), np.float32), np.zeros((8, 9), np.float32))
