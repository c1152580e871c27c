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


def _row_runs(active: np.ndarray, max_gap: int) -> list[list[tuple[int, int]]]:
    """Per tile row, the runs ``[c0, c1)`` of active tiles; runs closer than ``max_gap``
    tiles are joined.  (One pass over the grid: per-row numpy calls cost ~2x the rest of
    the planning.)"""
    runs: list[list[tuple[int, int]]] = [[] for _ in range(active.shape[0])]
    rows, cols = np.nonzero(active)  # row by row, columns rising
    if rows.size == 0:
        return runs
    breaks = np.flatnonzero((rows[1:] != rows[:-1]) | (cols[1:] - cols[:-1] > max_gap + 1))
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [rows.size - 1]))
    for r, c0, c1 in zip(rows[starts].tolist(), cols[starts].tolist(), (cols[ends] + 1).tolist()):
        runs[r].append((c0, c1))
    return runs


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
    for r, runs in enumerate(_row_runs(active, max_gap)):
        extended: list[list[int]] = []
        taken: set[int] = set()  # ids of the open rectangles this row already extends
        for c0, c1 in runs:
            best = None
            for rect in open_rects:
                if id(rect) in taken or rect[3] <= c0 - max_gap or c1 + max_gap <= rect[2]:
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
            else:
                taken.add(id(best))
            extended.append(best)
        closed.extend(rect for rect in open_rects if id(rect) not in taken)
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
