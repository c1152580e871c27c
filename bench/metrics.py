"""Image-quality metrics of the benchmark: PSNR and SSIM on display-referred images.

Renders are scene-linear with values far above 1 in highlights; comparing them raw would let a
few bokeh balls dominate every score.  Both metrics therefore look at what a viewer sees: clip to
0..1, then a 1/2.2 power (:func:`display_referred`).  Numpy only (no torch) so the metrics also run
where focuspull's renderer is not installed.
"""
from __future__ import annotations

import math

import numpy as np

DISPLAY_GAMMA = 2.2
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004, for a dynamic range L = 1


def display_referred(image_linear: np.ndarray) -> np.ndarray:
    """Scene-linear H x W [x C] -> display values in 0..1: clip, then ``x ** (1/2.2)``."""
    return np.clip(np.asarray(image_linear, dtype=np.float64), 0.0, 1.0) ** (1.0 / DISPLAY_GAMMA)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}; crop or resize one of them first")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected H x W or H x W x C images, got shape {a.shape}")
    return a, b


def psnr(image_linear: np.ndarray, reference_linear: np.ndarray) -> float:
    """PSNR in dB of two scene-linear images (H x W [x C]) after :func:`display_referred`.

    Peak is 1 (display range); identical images give ``inf``.
    """
    a, b = _check_pair(image_linear, reference_linear)
    mse = float(np.mean((display_referred(a) - display_referred(b)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """1-D Gaussian taps summing to 1 (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(plane: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of an H x W plane: (H-n+1) x (W-n+1), as Wang's filter2."""
    n = taps.size
    h, w = plane.shape
    rows = sum(taps[i] * plane[i:h - n + 1 + i, :] for i in range(n))
    return sum(taps[j] * rows[:, j:w - n + 1 + j] for j in range(n))


def ssim_map(x_display: np.ndarray, y_display: np.ndarray) -> np.ndarray:
    """Per-window SSIM of two display-referred single-channel planes (H x W, values 0..1).

    Returns (H-10) x (W-10): only windows fully inside the image, as in the reference code.
    """
    x = np.asarray(x_display, dtype=np.float64)
    y = np.asarray(y_display, dtype=np.float64)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {x.shape}")
    taps = gaussian_window()
    c1 = SSIM_K1 ** 2
    c2 = SSIM_K2 ** 2
    mu_x = _filter_valid(x, taps)
    mu_y = _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x * mu_x
    var_y = _filter_valid(y * y, taps) - mu_y * mu_y
    cov_xy = _filter_valid(x * y, taps) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(image_linear: np.ndarray, reference_linear: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) of two scene-linear
    images after :func:`display_referred`, computed per channel and averaged over channels."""
    a, b = _check_pair(image_linear, reference_linear)
    da, db = display_referred(a), display_referred(b)
    return float(np.mean([ssim_map(da[..., c], db[..., c]).mean() for c in range(a.shape[-1])]))


def _ball_mask(lum: np.ndarray, centre_xy: tuple[float, float], search_px: int):
    """Pixels of the ball around the centre: offsets (dx right, dy *up*) and the mask."""
    cx, cy = centre_xy
    ys, xs = np.mgrid[0:lum.shape[0], 0:lum.shape[1]]
    dx, dy = xs - cx, cy - ys
    dist = np.hypot(dx, dy)
    inside = dist <= search_px
    background = float(np.median(lum[inside & (dist > 0.85 * search_px)]))
    plateau = float(np.median(lum[dist <= 0.4 * search_px]))
    return dx, dy, dist, inside & (lum > background + 0.5 * (plateau - background))


def _luminance(image_linear: np.ndarray) -> np.ndarray:
    lum = np.asarray(image_linear, dtype=np.float64)
    return lum[..., :3].mean(axis=-1) if lum.ndim == 3 else lum


def polygon_vertex_angle_deg(image_linear: np.ndarray, centres_xy: list[tuple[float, float]],
                             blades: int, search_px: int) -> float:
    """Orientation of polygonal bokeh balls: the angle of a vertex, degrees counter-clockwise
    from +x as seen on screen, in ``0 .. 360/blades``.

    Uses the ``blades``-fold angular moment of the ball masks, weighted by distance^4 so the
    vertices (the farthest pixels) dominate; summing over several balls averages out noise.
    """
    lum = _luminance(image_linear)
    moment = 0j
    for centre in centres_xy:
        dx, dy, dist, ball = _ball_mask(lum, centre, search_px)
        moment += np.sum(dist[ball] ** 4 * np.exp(1j * blades * np.arctan2(dy[ball], dx[ball])))
    return float(np.degrees(np.angle(moment)) / blades % (360.0 / blades))


def bokeh_ball_radius_px(image_linear: np.ndarray, centre_xy: tuple[float, float], search_px: int) -> float:
    """Radius (px) of an isolated bokeh ball around ``centre_xy`` in a scene-linear image.

    The ball is the region within ``search_px`` of the centre brighter than halfway between the
    local background (median of the outer 15 % of the search disc) and the ball's plateau (median
    of the inner 40 %); the radius is that of a disc of the same area.  ``search_px`` should be
    about 1.2 to 2 times the expected radius, and no other ball may reach into it.  For a
    disc blurred by a small kernel the half-level contour sits at the disc edge, so this reads
    the CoC radius without fitting a shape.
    """
    _, _, _, ball = _ball_mask(_luminance(image_linear), centre_xy, search_px)
    return math.sqrt(float(np.count_nonzero(ball)) / math.pi)
