"""Where on the frame each MPI plane has pixels: a few rectangles instead of the whole frame.

A plane's pixels are usually a thin slice of the scene (a strip of floor, the rim of a
ball, the band of hidden background under an edge), so blurring the whole frame for every
plane wastes most of the work.  The frame is cut into square tiles; a plane is *active* on
a tile if any pixel of the tile touches it.  Active tiles are grouped into rectangles,
row by row, merging neighbours while one bigger rectangle costs less than two separate
ones with their blur halos.  Every active tile belongs to exactly one rectangle (its
*owner*), and a rectangle's content is masked to the tiles it owns, so rectangles may
overlap without anything being counted twice.

Pure numpy on small tile grids; the caller slices the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    """One rectangle in tile units (rows ``r0:r1``, cols ``c0:c1``) and the tiles it owns."""

    r0: int
    r1: int
    c0: int
    c1: int
    owned: np.ndarray  # bool, (r1 - r0) x (c1 - c0)


def _halo_cost(r0: int, r1: int, c0: int, c1: int, halo_tiles: float) -> float:
    return (r1 - r0 + 2 * halo_tiles) * (c1 - c0 + 2 * halo_tiles)


def _row_runs(row: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs ``[c0, c1)`` of active tiles; runs closer than ``max_gap`` tiles are joined."""
    cols = np.flatnonzero(row)
    if cols.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(cols) > max_gap + 1)
    starts = np.r_[cols[0], cols[breaks + 1]]
    ends = np.r_[cols[breaks], cols[-1]] + 1
    return list(zip(starts.tolist(), ends.tolist()))


def plane_regions(active: np.ndarray, halo_tiles: float) -> list[Region]:
    """Cover the active tiles of one plane with rectangles.

    Args:
        active: ``rows x cols`` bool, tiles where the plane has pixels.
        halo_tiles: blur halo in tile units (the rectangle grows by it before blurring).

    Returns:
        Rectangles whose ``owned`` masks partition ``active``.
    """
    max_gap = int(np.ceil(2 * halo_tiles))
    open_rects: list[list[int]] = []  # [r0, r1, c0, c1]
    closed: list[list[int]] = []
    for r in range(active.shape[0]):
        runs = _row_runs(active[r], max_gap)
        extended: list[list[int]] = []
        for c0, c1 in runs:
            best = None
            for rect in open_rects:
                if any(rect is e for e in extended) or rect[3] <= c0 - max_gap or c1 + max_gap <= rect[2]:
                    continue
                n0, n1 = min(rect[2], c0), max(rect[3], c1)
                merged = _halo_cost(rect[0], r + 1, n0, n1, halo_tiles)
                apart = _halo_cost(*rect, halo_tiles) + _halo_cost(r, r + 1, c0, c1, halo_tiles)
                if merged <= apart:
                    best = rect
                    best[1], best[2], best[3] = r + 1, n0, n1
                    break
            if best is None:
                best = [r, r + 1, c0, c1]
            extended.append(best)
        closed.extend(rect for rect in open_rects if not any(rect is e for e in extended))
        open_rects = extended
    closed.extend(open_rects)

    owner = np.full(active.shape, -1, np.int32)
    regions = []
    for i, (r0, r1, c0, c1) in enumerate(closed):
        window = owner[r0:r1, c0:c1]
        mine = active[r0:r1, c0:c1] & (window < 0)
        if not mine.any():
            continue
        window[mine] = i
        regions.append(Region(r0, r1, c0, c1, mine))
    return regions
