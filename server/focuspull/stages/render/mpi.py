"""Focal-plane multi-plane image (MPI): where the planes go and how pixels map onto them.

Planes are uniform in signed CoC radius (= uniform in disparity), ``spacing_px`` apart,
with the focal plane (CoC 0) exactly on a plane.  A pixel whose CoC lies between two
planes is split between them with linear ("tent") weights that sum to 1, so a smooth
depth ramp gives a smooth blur ramp: no banding.

Behind a foreground edge the background is unknown (it was occluded in the pinhole
image), yet a blurred foreground edge turns semi-transparent and shows it.  The
*hidden layer* extends nearby background colour and CoC into a band under the
foreground edge, wide enough for the largest blur; the renderer puts it on the planes
behind the visible surface, where the sharp visible surface hides it exactly and a
blurred one reveals it.

Torch tensors in here are ``1 x C x H x W`` on the render device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Largest cell of the coarse grids used to guess hidden background (dilation, fill).
# Cells are powers of two up to this, and frame padding is a multiple of it, so the grids
# never move relative to the picture from one frame to the next.
MAX_CELL_PX = 8
# Half-width of the smoothing of the frame's edge colour that is extended beyond it.
EDGE_SMOOTH_PX = 4


def cell_px(reach_px: float) -> int:
    """Grid cell for guessing content ``reach_px`` away: a power of two, at least reach/8.

    At most ~10 cells of reach keeps the fill cheap; a power of two changes only when the
    frame's largest blur crosses an octave, so a focus pull does not re-grid the hidden
    background every frame.
    """
    if reach_px < 8:
        return 1
    return min(MAX_CELL_PX, 2 ** int(math.ceil(math.log2(reach_px / 8))))


# Far beyond any CoC or plane coordinate (both are bounded by the frame), yet finite.
FAR_AWAY = 1e30


def any_true(mask: torch.Tensor) -> bool:
    """``bool(mask.any())`` for a bool tensor, through a byte view (bool reductions on the CPU
    are not vectorised: ~30x slower at 1080p)."""
    return mask.numel() > 0 and bool(mask.view(torch.uint8).max())


def where_finite(keep: torch.Tensor, values: torch.Tensor, other: float) -> torch.Tensor:
    """``torch.where(keep, values, other)`` for finite ``values``, by arithmetic:
    ``values * k + (1 - k) * other`` with ``k`` = keep as 0/1 is exact for finite values
    (``v * 1 + 0 == v``, ``v * 0 + other == other``), and three times cheaper on the CPU,
    whose ``where`` kernel runs ~8x slower than one arithmetic pass over a 1080p frame.
    ``keep``: bool, or float 0/1 (never modified).  ``other`` is capped at a quarter of the
    dtype's range (:data:`FAR_AWAY` overflows half precision)."""
    limit = torch.finfo(values.dtype).max / 4
    other = min(max(other, -limit), limit)
    k = keep.to(values.dtype, copy=True)
    return (values * k).add_(k.sub_(1.0).mul_(-other))


# A hidden surface must lie at least this many planes behind the visible one: the
# renderer's occlusion ignores the two planes nearest a surface (its own soft split),
# so anything closer than 3 planes would leak through an in-focus surface.
HIDDEN_MIN_GAP_PLANES = 3


# Plane spacing grows with the blur: ``spacing(c) = max(spacing_px, PLANE_GROWTH * |c|)``.
# Near focus the planes stay ``spacing_px`` apart (a 1 px step of a 3 px disc shows); at
# |c| = 20 px they are 2 px apart, an error of at most ±1 px on a 20 px disc, which the
# tent split between the two planes hides (the blend of a 19 and a 21 px disc is a 20 px
# disc with a 1 px softer rim).  The positions depend only on the spacing and growth,
# never on the frame's CoC range, so a plane never moves in a focus pull.
PLANE_GROWTH = 0.1


@dataclass(frozen=True)
class PlaneStack:
    """Planes at signed indices ``first .. first + count - 1``, ordered near -> far.

    Index ``j`` sits at CoC ``sign(j) * position(|j|)``: ``|j| * spacing_px`` up to index
    ``knee`` (where ``growth * |c|`` reaches the spacing), then each plane ``1 + growth``
    times farther from focus than the previous one.  ``growth = 0`` gives uniform planes.
    """

    first: int
    count: int
    spacing_px: float
    growth: float = 0.0

    @property
    def knee(self) -> int | None:
        """Last index of the uniform part (``None``: uniform everywhere)."""
        return None if self.growth <= 0 else max(1, int(math.ceil(1.0 / self.growth)))

    def position(self, k: np.ndarray) -> np.ndarray:
        """CoC radius (px) of the planes ``|j| = k`` (k >= 0, integers, array)."""
        k = np.asarray(k, dtype=np.float64)
        knee = self.knee
        if knee is None:
            return k * self.spacing_px
        base = knee * self.spacing_px
        return np.where(k <= knee, k * self.spacing_px, base * (1.0 + self.growth) ** np.maximum(k - knee, 0))

    @property
    def coc_px(self) -> np.ndarray:
        j = np.arange(self.count) + self.first
        return np.sign(j) * self.position(np.abs(j))

    def radius_px(self, i: int) -> float:
        return float(abs(self.coc_px[i]))  # the same arithmetic as coc_px, to the last bit


def _index_of(radius_px: float, spacing_px: float, growth: float) -> int:
    """Smallest plane index whose position is >= ``radius_px`` (>= 0)."""
    probe = PlaneStack(0, 1, spacing_px, growth)
    knee = probe.knee
    if knee is None or radius_px <= knee * spacing_px:
        return max(0, math.ceil(radius_px / spacing_px - 1e-9))
    k = knee + max(0, math.floor(math.log(radius_px / (knee * spacing_px)) / math.log1p(growth)))
    while probe.position(k) < radius_px * (1 - 1e-12):
        k += 1
    return int(k)


def place_planes(coc_min_px: float, coc_max_px: float, spacing_px: float = 1.0,
                 growth: float = 0.0) -> PlaneStack:
    """Planes covering ``[coc_min_px, coc_max_px]``, one at CoC 0: ``spacing_px`` apart
    near focus, the spacing growing as ``growth * |CoC|`` beyond (see :data:`PLANE_GROWTH`)."""
    if not (spacing_px > 0 and math.isfinite(spacing_px)):
        raise ValueError(f"plane spacing must be > 0 px, got {spacing_px}")
    if not (growth >= 0 and math.isfinite(growth)):
        raise ValueError(f"plane growth must be >= 0, got {growth}")
    lo = -_index_of(max(0.0, -coc_min_px), spacing_px, growth)
    hi = _index_of(max(0.0, coc_max_px), spacing_px, growth)
    return PlaneStack(first=lo, count=hi - lo + 1, spacing_px=float(spacing_px), growth=float(growth))


def plane_units(coc_px: torch.Tensor, stack: PlaneStack) -> torch.Tensor:
    """Signed CoC in plane units: ``j`` exactly on plane index ``j``, linear in CoC between
    two planes (so tent weights blend their CoC back to the pixel's), 0 at focus."""
    a = coc_px.abs()
    uniform = a / stack.spacing_px
    knee = stack.knee
    if knee is None:
        return uniform.copysign_(coc_px)
    # Beyond the knee plane k sits at base * (1 + g)^(k - knee): the plane at or below |c| is
    # n = floor(log_(1+g)(|c| / base)) planes past the knee, and the next is g times its
    # position farther, so units = knee + n + (|c| / position - 1) / g.  That is continuous
    # across planes (a pixel that rounding puts one segment off lands within rounding of the
    # same value) and below the uniform units beyond the knee (its slope is smaller), above
    # them before it: the minimum of the two is the piecewise-linear map.  Arithmetic only:
    # a lookup of each pixel's plane (bucketize + gather) costs ~4x more at 1080p.
    g = stack.growth
    base = knee * stack.spacing_px
    log_step = math.log1p(g)
    n = (a * (1.0 / base)).clamp_min_(1.0).log_().mul_(1.0 / log_step).floor_()
    position = (n * log_step).exp_().mul_(base)
    geometric = torch.div(a, position, out=position).sub_(1.0).mul_(1.0 / g).add_(n).add_(knee)
    return torch.minimum(uniform, geometric, out=uniform).copysign_(coc_px)


def plane_coordinate(coc_px: torch.Tensor, stack: PlaneStack) -> torch.Tensor:
    """Continuous plane coordinate: ``f = i`` exactly on plane ``i``, clamped to the stack."""
    return units_coordinate(plane_units(coc_px, stack), stack)


def units_coordinate(units: torch.Tensor, stack: PlaneStack) -> torch.Tensor:
    """:func:`plane_units` -> stack coordinate ``f`` (0 on the nearest plane), clamped."""
    return (units - stack.first).clamp(0, stack.count - 1)


def plane_weight(coordinate: torch.Tensor, plane: int) -> torch.Tensor:
    """Tent weight on one plane: ``max(0, 1 - |f - plane|)``; a pixel's weights sum to 1."""
    return (coordinate - plane).abs_().neg_().add_(1.0).clamp_min_(0.0)  # one new tensor, in place


def _sliding_max(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Maximum over ``2 * radius + 1`` samples along ``dim``, centred (``-inf`` beyond the
    ends, as ``max_pool2d``'s padding), by doubling: ``O(log radius)`` passes."""
    if radius <= 0:
        return x
    n, k = x.shape[dim], 2 * radius + 1
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [radius, radius]
    m = F.pad(x, pad, value=float("-inf"))
    width = 1  # m[i] = max of the padded input over [i, i + width)
    while 2 * width <= k:
        length = m.shape[dim] - width
        m = torch.maximum(m.narrow(dim, 0, length), m.narrow(dim, width, length))
        width *= 2
    if width == k:
        return m.narrow(dim, 0, n)
    return torch.maximum(m.narrow(dim, 0, n), m.narrow(dim, k - width, n))


def _max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Square grey dilation of ``1x1xHxW`` by ``radius`` px, separable."""
    return _sliding_max(_sliding_max(x, radius, -2), radius, -1)


def block_max(x: torch.Tensor, step: int) -> torch.Tensor:
    """Maximum over ``step x step`` blocks of ``1x1xHxW`` (partial blocks at the end count)."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, (-w) % step, 0, (-h) % step), value=float("-inf"))
    return x.view(*x.shape[:-2], x.shape[-2] // step, step, x.shape[-1] // step, step).amax(dim=(-3, -1))


def _coarse_max_filter(coc: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation by at least ``radius`` px, on a coarser grid (:func:`cell_px`) for large radii."""
    step = cell_px(radius)
    if step == 1:
        return _max_filter(coc, radius)
    h, w = coc.shape[-2:]
    coarse = _max_filter(block_max(coc, step), math.ceil(radius / step))
    return F.interpolate(coarse, scale_factor=step, mode="nearest")[..., :h, :w]


def _extend(values: list[torch.Tensor], weight: torch.Tensor, reach_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill unknown pixels from the *nearest* known ones, up to ``reach_px`` away.

    values: ``1xCixHxW`` tensors, filled as one (their channels concatenated); weight:
    ``1x1xHxW`` averaging weights (0 = unknown).  Works on a
    grid of :func:`cell_px` cells (each the weighted mean of its known pixels), grown one
    cell per iteration, so a pixel takes the colour of whatever known region is closest:
    the background beside an edge, not a foreground interior farther away.

    Returns ``(filled 1xCxHxW, reached 1x1xHxW bool)``.
    """
    step = cell_px(reach_px)
    h, w = weight.shape[-2:]
    # Weighted sums per cell (means: the cell area cancels), colour channels then weight.
    cells = torch.cat([F.avg_pool2d(v * weight, step, ceil_mode=True) for v in values]
                      + [F.avg_pool2d(weight, step, ceil_mode=True)], dim=1)
    known = cells[:, -1:] > 1e-12
    for _ in range(math.ceil(reach_px / step) + 2):
        # Only the unknown cells and a ring of their neighbours can change (usually a small
        # part of the frame); the ring's own 3x3 means are wrong at the crop but never used.
        box = _bounding_box(~known[0, 0], margin=1)
        if box is None:
            break
        window = (..., slice(box[0], box[1]), slice(box[2], box[3]))
        part, part_known = cells[window], known[window]
        around = _box3_mean(part * part_known)
        grow = ~part_known & (around[:, -1:] > 1e-12)
        if not any_true(grow):
            break
        cells[window] = torch.where(grow, around, part)
        known[window] |= grow
    cells = cells[:, :-1] / cells[:, -1:].clamp_min(1e-30)
    if step == 1:
        return cells, known
    filled = F.interpolate(cells, scale_factor=step, mode="bilinear", align_corners=False)
    reached = F.interpolate(known.to(weight.dtype), scale_factor=step, mode="nearest") > 0
    return filled[..., :h, :w], reached[..., :h, :w]


def _bounding_box(mask: torch.Tensor, margin: int = 0) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)`` of the true cells of a 2-D bool ``mask``, grown by ``margin`` and
    clipped to it; ``None`` when there are none (through a byte view: bool reductions on the
    CPU are not vectorised)."""
    as_bytes = mask.contiguous().view(torch.uint8)
    rows = torch.nonzero(as_bytes.amax(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(as_bytes.amax(dim=0)).flatten()
    h, w = mask.shape
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))


def _box3_mean(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of ``1xCxHxW`` with zeros beyond the edges (``avg_pool2d(x, 3, 1, 1)``), separable."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = p[..., :, :-2] + p[..., :, 1:-1] + p[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]).mul_(1.0 / 9.0)


def _highlight_weight(image: torch.Tensor) -> torch.Tensor:
    """Averaging weight that lets highlights barely count when guessing unseen content.

    What lies behind an edge or beyond the frame is unknown; spreading a point light seen
    next to it over a whole area would invent energy.
    """
    luma = image[:, :3].clamp_min(0).sum(dim=1, keepdim=True).div_(3.0)
    return luma.add_(1.0).square_().reciprocal_()  # in place: one full-frame tensor


def extend_borders(image: torch.Tensor, coc: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``image`` (1xCxHxW) and ``coc`` (1x1xHxW) by ``pad`` px of guessed surroundings.

    Blur near the frame edge gathers light from beyond it.  Treating that as empty would
    darken the edge (or, renormalised, brighten any bokeh ball that reaches it); instead
    the edge is extended outwards: depth clamped to the edge (interpolating it would invent
    surfaces between a foreground and its background), colour from a slightly smoothed edge
    in which highlights barely count (a point light on the edge must not become a bar).
    """
    if pad <= 0:
        return image, coc
    h, w = image.shape[-2:]
    top, bottom, left, right = _smoothed_edges(image)
    # The frame itself is kept as it is (one copy, from any layout: a permuted view is fine);
    # around it, each side's smoothed edge line is replicated outwards and each corner takes
    # its corner pixel, as replicate padding of the frame with smoothed edges would.
    colour = image.new_empty((*image.shape[:-2], h + 2 * pad, w + 2 * pad))
    colour[..., pad:pad + h, pad:pad + w] = image
    colour[..., :pad, pad:pad + w] = top[..., None, :]
    colour[..., pad + h:, pad:pad + w] = bottom[..., None, :]
    colour[..., pad:pad + h, :pad] = left[..., :, None]
    colour[..., pad:pad + h, pad + w:] = right[..., :, None]
    for rows, cols, value in ((slice(None, pad), slice(None, pad), top[..., :1]),
                              (slice(None, pad), slice(pad + w, None), top[..., -1:]),
                              (slice(pad + h, None), slice(None, pad), bottom[..., :1]),
                              (slice(pad + h, None), slice(pad + w, None), bottom[..., -1:])):
        colour[..., rows, cols] = value[..., None]
    return colour, F.pad(coc, (pad, pad, pad, pad), mode="replicate")


def _smoothed_edges(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The outermost row and column on each side (``top, bottom`` 1xCxW, ``left, right`` 1xCxH)
    as a local, highlight-weighted mean: what is replicated outwards (only thin bands along the
    edges are read).  Columns are smoothed after rows, so the corners are the columns' values."""
    r = EDGE_SMOOTH_PX
    k = 2 * r + 1
    h, w = image.shape[-2:]

    def mean(band: torch.Tensor) -> torch.Tensor:
        weight = _highlight_weight(band)
        num, den = band * weight, weight
        for kernel, padding in (((k, 1), (r, 0)), ((1, k), (0, r))):
            num = F.avg_pool2d(num, kernel, stride=1, padding=padding, count_include_pad=False)
            den = F.avg_pool2d(den, kernel, stride=1, padding=padding, count_include_pad=False)
        return num / den

    left = mean(image[..., :, :min(k, w)])[..., :, 0]
    right = mean(image[..., :, max(0, w - k):])[..., :, -1]
    if w == 1:
        left = right  # one column: the right side's value is the one kept
    bottom = mean(image[..., max(0, h - k):, :])[..., -1, :].clone()
    top = bottom if h == 1 else mean(image[..., :min(k, h), :])[..., 0, :].clone()
    for row, y in ((top, 0), (bottom, h - 1)):
        row[..., 0] = left[..., y]
        row[..., -1] = right[..., y]
    return top, bottom, left, right


@dataclass(frozen=True)
class HiddenSurface:
    """The hidden surface on ``box`` (``y0, y1, x0, x1`` px of the frame; none outside it):
    ``colour`` (1xCxhxw), ``coc`` and ``mask`` (1x1xhxw) cropped to the box.  Where ``mask``
    is 1 there is a hidden surface with that colour and CoC at least the gap behind the
    visible one."""

    box: tuple[int, int, int, int]
    colour: torch.Tensor
    coc: torch.Tensor
    mask: torch.Tensor


def hidden_layer(image: torch.Tensor, coc: torch.Tensor, spacing_px: float,
                 reveal_radius_px: float, *, window: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`hidden_surface` on the whole frame: ``(colour 1xCxHxW, coc 1x1xHxW, mask 1x1xHxW)``,
    zero where there is none."""
    colour, hidden_coc, mask = torch.zeros_like(image), torch.zeros_like(coc), torch.zeros_like(coc)
    surface = hidden_surface(image, coc, spacing_px, reveal_radius_px, window=window)
    if surface is not None:
        here = _crop(surface.box)
        colour[here], hidden_coc[here], mask[here] = surface.colour, surface.coc, surface.mask
    return colour, hidden_coc, mask


def hidden_surface(image: torch.Tensor, coc: torch.Tensor, spacing_px: float, reveal_radius_px: float, *,
                   window: bool = True, align: int = MAX_CELL_PX) -> HiddenSurface | None:
    """Estimate the background hidden behind foreground edges (``None``: there is none).

    A pixel is on the near side of an edge when a pixel within 2 px lies at least
    :data:`HIDDEN_MIN_GAP_PLANES` planes farther (a slanted surface changes far less
    than that over 2 px, so it has no hidden layer).  The far side's CoC is carried
    ``reveal_radius_px`` under the foreground; wherever the foreground is nearer than it
    by the gap and is itself blurred (more than one plane from focus), a hidden surface
    is filled in from the nearest background by a depth-weighted push-pull.

    Args:
        image: ``1xCxHxW`` premultiplied colour (alpha, if any, as the last channel).
        coc: ``1x1xHxW`` signed CoC radius in px.
        spacing_px: plane spacing (the gap test is in planes).
        reveal_radius_px: how far under a foreground edge the background can be seen
            (the largest blur radius in the frame).
        window: work only around the occluders (False: on the whole frame; the same result,
            for tests).
        align: the returned box starts on multiples of this (a multiple of :data:`MAX_CELL_PX`).
    """
    if align % MAX_CELL_PX:
        raise ValueError(f"align must be a multiple of {MAX_CELL_PX} px, got {align}")
    radius = int(math.ceil(reveal_radius_px))
    gap = HIDDEN_MIN_GAP_PLANES * spacing_px
    if radius < 1:
        return None
    local_far = _max_filter(coc, 2)
    edge = (local_far - coc) >= gap
    if not any_true(edge):
        return None
    # Pixels off an edge are pushed far below every CoC: they drop out of the maximum.
    far = _coarse_max_filter(where_finite(edge, local_far, -FAR_AWAY), radius)
    occluder = ((far - coc) >= gap) & (coc.abs() > spacing_px)
    if not any_true(occluder):
        return None
    # Everything from here on matters only near an occluder, so it runs on a window around
    # them (a foreground that fills a third of the frame costs a third), sized so every
    # value inside the occluders' box is what the whole frame would give (tested).
    height, width = coc.shape[-2:]
    out_box = _bounding_box(occluder[0, 0]) if window else (0, height, 0, width)
    fill_step, near_step = cell_px(radius), cell_px(4 * radius)
    # A filled pixel depends on cells as far as the fill grows, plus the bilinear footprint.
    sources = _grown(out_box, (math.ceil(radius / fill_step) + 4) * fill_step, height, width, align)
    # A source's nearest occluder depends on occluders 4x the reveal radius away (+ a cell).
    nearby = _grown(sources, (math.ceil(4 * radius / near_step) + 1) * near_step, height, width)
    occluder_coc = where_finite(occluder[_crop(nearby)], coc[_crop(nearby)], FAR_AWAY)
    nearest_occluder = -_coarse_max_filter(-occluder_coc, 4 * radius)[_crop(sources, nearby)]
    # Sources are surfaces at least the gap behind the nearest occluder (within 4x the
    # reveal radius): the background of each edge, never the foreground's own interior.
    here = _crop(sources)
    occluder, coc_here = occluder[here], coc[here]
    background = (~occluder) & (coc_here >= nearest_occluder + gap)
    weight = background.to(image.dtype) * _highlight_weight(image[here])
    filled, reached = _extend([image[here], coc_here], weight, radius)
    mask = occluder & reached & ((filled[:, -1:] - coc_here) >= gap)
    return HiddenSurface(sources, filled[:, :-1], filled[:, -1:], mask.to(image.dtype))


def _grown(box: tuple[int, int, int, int], margin: int, height: int, width: int,
           align: int = MAX_CELL_PX) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` px, within the frame, its start on multiples of ``align``
    (at least the coarsest grid, :data:`MAX_CELL_PX`: every grid sits where it sits on the
    whole frame)."""
    y0, y1, x0, x1 = box
    return (max(0, y0 - margin) // align * align, min(height, y1 + margin),
            max(0, x0 - margin) // align * align, min(width, x1 + margin))


def _crop(box: tuple[int, int, int, int], within: tuple[int, int, int, int] = (0, 0, 0, 0)) -> tuple:
    """Index of ``box`` in a tensor that holds the frame from ``within``'s start."""
    return (..., slice(box[0] - within[0], box[1] - within[0]), slice(box[2] - within[2], box[3] - within[2]))
