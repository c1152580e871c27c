"""A procedural moving shot with exact disparity, and the errors a per-frame depth model makes.

Used by ``bench/flicker.py`` and ``tests/stages/depth/test_stabilise_motion.py``.

The camera translates sideways (``near_speed_px`` per frame at disparity 1, so a surface
at disparity ``d`` slides ``near_speed_px * d`` px per frame: parallax), past a textured
slanted far wall (d 0.06 -> 0.16), a floor rising to the camera (d 0.18 -> 0.40), a fence
of posts (d 0.30), a mid
box with a slanted face (d 0.40 -> 0.50) and a near cylindrical pillar (d 0.82 -> 0.88),
while a ball (a sphere, d 0.60 -> 0.68) moves on its own, against the camera.  Depth
varies along the motion, so comparing pixels in place (no motion compensation) fails.
Textures are sums of sinusoids evaluated analytically at sub-pixel positions, so motion
is exact (no resampling).  Disparity is relative (``disparity_norm``, near = 1).

``jitter`` gives every frame what a monocular estimator gives it: its own scale and
shift, a smooth low-frequency error field, and pixel noise.
"""
from __future__ import annotations

import numpy as np


def _texture(seed: int, tint, scale_px: float):
    """``f(u, v) -> H x W x 3`` in 0.05..1: six random sinusoids, periods ~scale_px."""
    rng = np.random.default_rng(seed)
    waves = []
    for _ in range(6):
        angle = rng.uniform(0, np.pi)
        period = scale_px * rng.uniform(0.5, 2.0)
        waves.append((np.cos(angle) / period, np.sin(angle) / period, rng.uniform(0, 2 * np.pi),
                      rng.uniform(0.2, 1.0, 3)))
    tint = np.asarray(tint, np.float64)

    def sample(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(u.shape + (3,))
        for fx, fy, phase, colour in waves:
            out += colour * (0.5 + 0.5 * np.sin(2 * np.pi * (fx * u + fy * v) + phase))[..., None]
        return 0.05 + 0.95 * tint * out / 6.0

    return sample


def moving_shot(n_frames: int = 16, height: int = 108, width: int = 192, near_speed_px: float = 5.0,
                seed: int = 0):
    """``(rgb frames, clean disparity frames)``: ``H x W x 3`` / ``H x W`` float32."""
    s = width / 192.0  # layout in units of a 192 px wide frame
    wall = _texture(seed, (1.0, 1.0, 1.0), 7 * s)
    floor = _texture(seed + 1, (0.9, 0.8, 0.6), 5 * s)
    box = _texture(seed + 2, (1.0, 0.6, 0.4), 4 * s)
    pillar = _texture(seed + 3, (0.4, 0.7, 1.0), 3 * s)
    ball = _texture(seed + 4, (0.9, 1.0, 0.5), 3 * s)
    posts = _texture(seed + 5, (0.7, 0.9, 0.8), 2 * s)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    floor_top = 0.62 * height
    rgbs, disparities = [], []
    for t in range(n_frames):
        camera = near_speed_px * t  # px of travel at disparity 1
        # Far wall, slanted: d = 0.06 + 0.10 * u / width at world x u.  A point at u is
        # seen at x = u - camera * d(u), so u = (x + 0.06 camera) / (1 - 0.10 camera / width).
        u = (xx + 0.06 * camera) / (1.0 - 0.10 * camera / width)
        d = 0.06 + 0.10 * u / width
        rgb = wall(u, yy)
        on_floor = yy >= floor_top
        d_floor = 0.18 + 0.22 * (yy - floor_top) / max(1.0, height - 1 - floor_top)
        floor_rgb = floor(xx + camera * d_floor, yy * 3.0)
        d = np.where(on_floor, d_floor, d)
        rgb = np.where(on_floor[..., None], floor_rgb, rgb)
        # A fence of posts (d 0.30), 7 px wide every 28 px: many depth edges across the
        # frame, all moving at another speed than what is behind them.
        u = xx + camera * 0.30
        inside = (np.mod(u, 28 * s) < 7 * s) & (yy >= 45 * s)
        d = np.where(inside, 0.30, d)
        rgb = np.where(inside[..., None], posts(u, yy), rgb)
        # Mid box, its front face turned to the camera: d 0.40 -> 0.50 over world x
        # 60..120 (192-px units), rows 25..80; texture moves at the face's mean parallax.
        u = xx + camera * 0.45
        inside = (u >= 60 * s) & (u < 120 * s) & (yy >= 25 * s) & (yy < 80 * s)
        d = np.where(inside, 0.40 + 0.10 * (u - 60 * s) / (60 * s), d)
        rgb = np.where(inside[..., None], box(u, yy), rgb)
        # Ball (a sphere, d 0.60 at the rim to 0.68 at the centre): its own motion, left
        # and down, in front of the box, behind the pillar.
        cx = 150 * s - 1.5 * s * t - camera * 0.60
        cy = 40 * s + 0.8 * s * t
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (16 * s) ** 2
        inside = r2 < 1.0
        d = np.where(inside, 0.60 + 0.08 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)), d)
        rgb = np.where(inside[..., None], ball(xx - cx, yy - cy), rgb)
        # Near pillar (a cylinder, d 0.82 at the sides to 0.88 in the middle): world x 150..175.
        u = xx + camera * 0.85
        across = (u - 162.5 * s) / (12.5 * s)
        inside = np.abs(across) < 1.0
        d = np.where(inside, 0.82 + 0.06 * np.sqrt(np.clip(1.0 - across ** 2, 0.0, 1.0)), d)
        rgb = np.where(inside[..., None], pillar(u, yy), rgb)
        rgbs.append(rgb.astype(np.float32))
        disparities.append(d.astype(np.float32))
    return rgbs, disparities


def static_shot(n_frames: int = 16, height: int = 108, width: int = 192, seed: int = 0):
    """The moving shot's first frame held: a locked-off camera, nothing moving."""
    rgbs, disparities = moving_shot(1, height, width, 0.0, seed)
    return rgbs * n_frames, disparities * n_frames


def jitter(disparities, seed: int = 1, scale: float = 0.08, shift: float = 0.03,
           low_frequency: float = 0.03, noise: float = 0.005):
    """Per-frame scale (1 +- scale), shift (+- shift), a smooth error field of amplitude
    ~``low_frequency`` (three random sinusoids, wavelengths 0.5..1.5 frame widths, new
    every frame) and Gaussian pixel noise.  Returns new float32 frames."""
    rng = np.random.default_rng(seed)
    out = []
    for d in disparities:
        height, width = d.shape
        yy, xx = np.mgrid[0:height, 0:width] / float(width)
        field = np.zeros(d.shape)
        for _ in range(3):
            angle = rng.uniform(0, 2 * np.pi)
            wavelength = rng.uniform(0.5, 1.5)
            field += np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / wavelength
                            + rng.uniform(0, 2 * np.pi))
        a = 1.0 + rng.uniform(-scale, scale)
        b = rng.uniform(-shift, shift)
        out.append((a * d + b + low_frequency / np.sqrt(1.5) * field
                    + rng.normal(0.0, noise, d.shape)).astype(np.float32))
    return out


def flicker(outputs, reference) -> float:
    """Mean ``|(out_t - out_t-1) - (ref_t - ref_t-1)|``: frame-to-frame change the
    reference does not have."""
    diffs = [np.abs((o1 - o0) - (r1 - r0)).mean()
             for o0, o1, r0, r1 in zip(outputs, outputs[1:], reference, reference[1:])]
    return float(np.mean(diffs))


def psnr(outputs, reference, peak: float = 1.0) -> float:
    """PSNR in dB over the whole clip (values clipped to 0..peak)."""
    mse = np.mean([np.mean((np.clip(o, 0, peak) - np.clip(r, 0, peak)) ** 2)
                   for o, r in zip(outputs, reference)])
    return float(10.0 * np.log10(peak * peak / max(mse, 1e-20)))
