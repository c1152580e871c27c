"""A procedural shot with exact depth, for ``focuspull demo`` and tests (numpy only).

The scene, seen through a 50 mm lens on a full-frame sensor (planar depth in metres):

* a textured back wall at 14 m strung with small, very bright lights (scene-linear
  values up to ~25): out of focus they become bokeh balls, the signature of a real lens;
* a tiled floor from the bottom of the frame to the wall (depth grows up the frame, so
  the focal plane is visible as a sharp band sliding along it);
* a striped ball at 4.5 m rolling across the frame (motion);
* a textured pillar at 1.6 m on the left, drifting slightly, with a few bright specks
  (foreground bokeh);
* a hanging lantern at 8 m that bobs up and down.

Everything is drawn with a z-buffer, so colour and depth always agree.  Frames are
``H x W x 3`` float32 scene-linear plus ``H x W`` depth in metres; any size works (the
layout is in fractions of the frame), so tests use a tiny version of the same shot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WALL_DEPTH_M = 14.0
BALL_DEPTH_M = 4.5
PILLAR_DEPTH_M = 1.6
LANTERN_DEPTH_M = 8.0
CAMERA_HEIGHT_M = 1.4
HORIZON = 0.42  # fraction of the frame height where the floor meets the wall
NEAREST_M = PILLAR_DEPTH_M
FARTHEST_M = WALL_DEPTH_M


@dataclass(frozen=True)
class DemoFrame:
    """One frame: ``rgb`` H x W x 3 float32 scene-linear, ``depth_m`` H x W float32 metres."""

    rgb: np.ndarray
    depth_m: np.ndarray


def _value_noise(height: int, width: int, cells: int, seed: int) -> np.ndarray:
    """Smooth 0..1 noise: a coarse random grid, bilinearly upsampled (resolution-independent)."""
    rng = np.random.default_rng(seed)
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    y = np.linspace(0, cells, height, dtype=np.float32)[:, None]
    x = np.linspace(0, cells, width, dtype=np.float32)[None, :]
    y0 = np.minimum(y.astype(int), cells - 1)
    x0 = np.minimum(x.astype(int), cells - 1)
    fy, fx = y - y0, x - x0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _put(rgb, depth, mask, colour, depth_m) -> None:
    """Z-buffered paint: ``colour`` (H x W x 3 or 3) where ``mask`` and nearer than what is there."""
    depth_m = np.broadcast_to(np.asarray(depth_m, np.float32), depth.shape)
    win = mask & (depth_m < depth)
    colour = np.broadcast_to(np.asarray(colour, np.float32), rgb.shape)
    rgb[win] = colour[win]
    depth[win] = depth_m[win]


class DemoScene:
    """The shot, ``frame_count`` frames of ``height x width``.  ``frame(i)`` is pure: the
    same index always gives the same pixels (no state between frames)."""

    def __init__(self, width: int = 960, height: int = 540, frame_count: int = 48) -> None:
        if width < 16 or height < 16 or frame_count < 1:
            raise ValueError(f"demo scene needs at least 16x16 and one frame, got {width}x{height}x{frame_count}")
        self.width, self.height, self.frame_count = int(width), int(height), int(frame_count)
        h, w = self.height, self.width
        self._y = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h  # 0 top .. 1 bottom
        self._x = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
        self._wall_texture = self._wall(h, w)
        self._lights = self._light_positions()

    # -- static parts ---------------------------------------------------------------------
    def _wall(self, h: int, w: int) -> np.ndarray:
        noise = _value_noise(h, w, 24, seed=1)
        bricks_y = np.floor(self._y * 28)
        bricks_x = np.floor(self._x * 20 + 0.5 * (bricks_y % 2))
        brick = (np.sin(bricks_x * 12.9898 + bricks_y * 78.233) * 43758.5453) % 1.0
        mortar = ((self._y * 28) % 1.0 < 0.08) | (((self._x * 20 + 0.5 * (bricks_y % 2)) % 1.0) < 0.05)
        base = 0.10 + 0.08 * brick + 0.05 * noise
        tint = np.stack([base * 1.25, base * 0.8, base * 0.65], axis=-1)
        return np.where(mortar[..., None], 0.05, tint).astype(np.float32)

    def _light_positions(self) -> np.ndarray:
        # Fairy lights along two sagging strings on the wall: (x, y) in frame fractions.
        xs = np.linspace(0.08, 0.95, 16, dtype=np.float32)
        string1 = np.stack([xs, 0.10 + 0.06 * np.sin(np.pi * (xs - 0.08) / 0.87)], axis=1)
        string2 = np.stack([xs[::2] + 0.02, 0.26 + 0.04 * np.sin(2 * np.pi * xs[::2])], axis=1)
        return np.concatenate([string1, string2])

    # -- one frame --------------------------------------------------------------------------
    def frame(self, index: int) -> DemoFrame:
        h, w = self.height, self.width
        t = index / max(1, self.frame_count - 1)  # 0..1 over the shot
        y, x = self._y, self._x
        aspect = w / h
        rgb = np.empty((h, w, 3), np.float32)
        depth = np.full((h, w), np.inf, np.float32)

        # Wall (everything above the floor line and behind the floor).
        _put(rgb, depth, np.ones((h, w), bool), self._wall_texture, WALL_DEPTH_M)

        # Floor: a ground plane seen from CAMERA_HEIGHT_M; depth from the row's angle below
        # the horizon (planar depth = height * focal / offset, in frame units).
        below = np.maximum(y - HORIZON, 1e-4)
        floor_depth = CAMERA_HEIGHT_M * 0.9 / below
        floor_mask = np.broadcast_to((y > HORIZON) & (floor_depth < WALL_DEPTH_M), (h, w))
        u = (x - 0.5) * floor_depth * 1.2  # metres across the floor
        tiles = (np.floor(u / 0.6) + np.floor(floor_depth / 0.6)) % 2
        floor_colour = np.stack([0.16 + 0.10 * tiles, 0.14 + 0.08 * tiles, 0.11 + 0.05 * tiles], -1)
        _put(rgb, depth, floor_mask, floor_colour, np.broadcast_to(floor_depth, (h, w)))

        # Fairy lights: tiny HDR discs on the wall, gently twinkling.
        radius = max(1.2, 0.0035 * w)
        for i, (lx, ly) in enumerate(self._lights):
            d2 = ((x - lx) * w) ** 2 + ((y - ly) * h) ** 2
            twinkle = 1.0 + 0.3 * np.sin(2 * np.pi * (t * 3 + i * 0.37))
            warm = np.array([1.0, 0.75, 0.45], np.float32) if i % 3 else np.array([0.5, 0.7, 1.0], np.float32)
            _put(rgb, depth, d2 <= radius ** 2, warm * 18.0 * twinkle, WALL_DEPTH_M - 0.05)

        # Lantern at 8 m, bobbing: a glowing box with a dark frame.
        ly = 0.30 + 0.05 * np.sin(2 * np.pi * t)
        box = (np.abs(x - 0.72) < 0.025) & (np.abs(y - ly) < 0.045 * 1.0)
        inner = (np.abs(x - 0.72) < 0.017) & (np.abs(y - ly) < 0.035)
        _put(rgb, depth, box, np.array([0.04, 0.03, 0.02]), LANTERN_DEPTH_M)
        _put(rgb, depth, inner, np.array([6.0, 3.5, 1.2]), LANTERN_DEPTH_M - 0.01)
        cord = (np.abs(x - 0.72) < 0.0015) & (y < ly - 0.045)
        _put(rgb, depth, cord, np.array([0.02, 0.02, 0.02]), LANTERN_DEPTH_M)

        # Ball at 4.5 m rolling left to right, striped so its motion is visible.
        bx, by, br = 0.25 + 0.45 * t, 0.62, 0.09
        dx, dy = (x - bx) * aspect, y - by
        ball = dx ** 2 + dy ** 2 <= br ** 2
        nz = np.sqrt(np.clip(br ** 2 - dx ** 2 - dy ** 2, 0, None)) / br
        shade = 0.25 + 0.75 * np.clip(0.5 * nz - 0.4 * dx / br - 0.5 * dy / br, 0, 1)
        stripes = (np.floor((dx / br + 4 * t) * 3) % 2).astype(np.float32)
        ball_colour = np.stack([0.7 * shade, (0.15 + 0.45 * stripes) * shade, 0.1 * shade], -1)
        spec = (dx + 0.35 * br) ** 2 + (dy + 0.4 * br) ** 2 <= (0.12 * br) ** 2
        ball_colour = np.where((ball & spec)[..., None], 12.0, ball_colour)
        _put(rgb, depth, ball, ball_colour, BALL_DEPTH_M - nz * br * 2.0)

        # Pillar at 1.6 m on the left, drifting a little, with bright specks (front bokeh).
        px = 0.10 + 0.03 * np.sin(np.pi * t)
        pillar = np.broadcast_to(np.abs(x - px) < 0.07, (h, w))
        grain = _value_noise(h, w, 40, seed=7)
        wood = 0.12 + 0.10 * np.sin((x - px) * 180 + grain * 6) ** 2
        pillar_colour = np.stack([wood * 1.3, wood * 0.9, wood * 0.55], -1)
        specks = np.zeros((h, w), bool)
        for sy in (0.2, 0.45, 0.7, 0.9):
            specks |= ((x - px - 0.02) * w) ** 2 + ((y - sy) * h) ** 2 <= radius ** 2
        pillar_colour = np.where(specks[..., None], 25.0, pillar_colour)
        _put(rgb, depth, pillar, pillar_colour, PILLAR_DEPTH_M)
        return DemoFrame(rgb.astype(np.float32), depth.astype(np.float32))
