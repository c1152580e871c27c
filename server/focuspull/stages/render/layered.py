"""The layered bokeh renderer: one frame, CoC per pixel -> depth of field.

Algorithm (docs/renderer.md has the long form):

1. Planes uniform in CoC around the focal plane (:mod:`focuspull.stages.render.mpi`); each pixel is
   split between its two nearest planes with tent weights; a hidden layer extends the
   background under foreground edges.
2. Planes are processed near -> far.  Each plane's premultiplied colour and its
   coverage are blurred with the aperture at the plane's radius (:mod:`focuspull.stages.render.blur`),
   only over the bounding box of its pixels plus the blur radius.
3. Occlusion: a plane's light is attenuated by ``T = clamp(1 - sum of the blurred
   coverage of every plane at least two planes nearer)``.  The two planes nearest a
   plane are skipped because a pixel is split across adjacent planes and must not
   occlude itself; summing coverage (rather than multiplying transmittances) makes the
   two halves of a split pixel occlude what is behind as fully as the whole pixel.
4. The accumulated colour is divided by the accumulated coverage, which removes the
   darkening at the blurred edges of holes.  Beyond the frame, the nearest content is
   extended by the largest blur radius first (highlights down-weighted), so the frame
   edge neither darkens nor brightens a bokeh ball that reaches it.

A sharp foreground therefore gets nothing of the background over it (its coverage is
1 at every pixel it covers), and a blurred foreground has coverage < 1 across its
edge band, through which the background (and the hidden layer) shows.
"""
from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from focuspull.stages.aperture import Aperture
from focuspull.stages.render.blur import DEFAULT_LEVEL_RADIUS_PX, blur_plane, level_scale
from focuspull.errors import Cancelled, DepthError, InputError
from focuspull.io.transfer import LUMA_WEIGHTS
from focuspull.stages.lens import Lens, coc_from_depth, describe_bad_pixels
from focuspull.stages.render.mpi import (FAR_AWAY, MAX_CELL_PX, PLANE_GROWTH, any_true, block_max, extend_borders,
                                        HiddenSurface, hidden_surface, place_planes, plane_units, plane_weight, units_coordinate,
                                        where_finite)
from focuspull.stages.render.regions import plane_regions

_TILE = 32  # px: granularity of each plane's bounding box


@dataclass(frozen=True)
class Highlights:
    """Bloom for display-referred input (ZDefocus "bloom threshold / gain").

    Scene-linear HDR input needs none: its highlights already carry the energy that makes
    bokeh balls.  Display-referred input clips them at 1, so pixels whose luminance is above
    ``threshold`` are multiplied by ``1 + gain * (lum - threshold) / (1 - threshold)``.
    """

    threshold: float = 0.9
    gain: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise InputError(f"highlight threshold must be in [0, 1), got {self.threshold}",
                             "pass e.g. --highlight-threshold 0.9")
        if not (self.gain >= 0.0 and math.isfinite(self.gain)):
            raise InputError(f"highlight gain must be >= 0, got {self.gain}",
                             "pass e.g. --highlight-gain 4")


def apply_highlights(image: torch.Tensor, highlights: Highlights) -> torch.Tensor:
    """Boost bright pixels of a ``1xCxHxW`` image (alpha, if any, is left alone)."""
    rgb = image[:, :3]
    luma = sum(float(w) * rgb[:, i:i + 1] for i, w in enumerate(LUMA_WEIGHTS))
    excess = ((luma - highlights.threshold) / (1.0 - highlights.threshold)).clamp_min(0)
    boosted = rgb * (1.0 + highlights.gain * excess)
    return torch.cat([boosted, image[:, 3:]], dim=1)


def frame_border_px(max_radius_px: float, level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX) -> int:
    """How far beyond the frame to extend the picture before blurring.

    The largest blur radius (light from that far outside reaches the edge), rounded up to a
    multiple of every coarse grid's step so those grids keep their place on the picture
    whatever the frame's largest CoC (no flicker in a focus pull).  Bounded because
    :func:`render_coc` refuses CoC beyond half the frame diagonal.
    """
    if max_radius_px <= 0.5:
        return 0
    quantum = max(MAX_CELL_PX, level_scale(max_radius_px, level_radius_px))
    needed = int(math.ceil(max_radius_px)) + 1
    return -(-needed // quantum) * quantum


def _check_inputs(image: np.ndarray, coc_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not np.issubdtype(np.asarray(image).dtype, np.floating):
        raise InputError(f"image must be float scene-linear light, got {np.asarray(image).dtype} code values",
                         "linearise it first, e.g. focuspull.io.to_linear(img / 255.0, 'srgb')")
    # Cast first (float64 values beyond float32 become inf), contiguous (flipped views).
    with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
        image = np.ascontiguousarray(image, dtype=np.float32)
        coc_px = np.ascontiguousarray(coc_px, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
        raise InputError(f"image must be H x W x 3 (RGB) or H x W x 4 (RGBA), got shape {image.shape}",
                         "pass the colour channels only; depth goes in its own argument")
    if coc_px.shape != image.shape[:2]:
        raise InputError(f"CoC/depth is {coc_px.shape[1] if coc_px.ndim > 1 else '?'}x{coc_px.shape[0]} "
                         f"but the image is {image.shape[1]}x{image.shape[0]}",
                         "resize the depth to the image, or use the matching depth pass")
    bad = ~np.isfinite(coc_px)
    if bad.any():
        raise DepthError(f"CoC has {describe_bad_pixels(bad, 'non-finite')}",
                         "clamp the depth or pass max_radius_px / --max-size")
    finite = np.isfinite(image)
    if not finite.all():
        raise InputError(f"image has {describe_bad_pixels(~finite.all(axis=2), 'NaN/inf')}",
                         "clean the plate (e.g. Nuke Expression isnan/isinf -> 0) before rendering")
    limit = 0.5 * math.hypot(*image.shape[:2])
    wild = np.abs(coc_px) > limit
    if wild.any():
        # No lens blurs a point over more than the frame: this is a bad depth sample.
        raise DepthError(f"CoC reaches {float(np.abs(coc_px).max()):.0f} px, more than half the frame "
                         f"diagonal ({limit:.0f} px), at {describe_bad_pixels(wild, 'such')}",
                         "cap the blur with max_radius_px / --max-size, or fix the depth there "
                         "(a near-clip Z sample?)")
    return image, coc_px


class _PlaneTiles:
    """Per tile, the lowest and highest plane any of its pixels touches."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, height: int, width: int):
        self.lo, self.hi = lo, hi
        self.height, self.width = height, width

    @classmethod
    def of(cls, coordinate: torch.Tensor, on_stack: bool = False) -> "_PlaneTiles":
        """Tiles of one ``1x1xHxW`` stack coordinate; negative values touch no plane
        (``on_stack``: there are none, the coordinate is clamped to the stack)."""
        # Off-stack values pushed above every plane drop out of the minimum.
        pushed = coordinate if on_stack else where_finite(coordinate >= 0, coordinate, FAR_AWAY)
        lo = torch.floor(-block_max(-pushed, _TILE))
        hi = torch.ceil(block_max(coordinate, _TILE))
        return cls(lo[0, 0].cpu().numpy(), hi[0, 0].cpu().numpy(), *coordinate.shape[-2:])

    def __or__(self, other: "_PlaneTiles") -> "_PlaneTiles":
        """Tiles touching a plane in either."""
        return _PlaneTiles(np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi), self.height, self.width)

    def touches(self, plane: int, box: tuple[int, int, int, int]) -> bool:
        """Whether any tile of ``box`` (``y0, y1, x0, x1`` px, tile-aligned start) touches ``plane``."""
        y0, y1, x0, x1 = box
        rows = slice(y0 // _TILE, -(-y1 // _TILE))
        cols = slice(x0 // _TILE, -(-x1 // _TILE))
        return bool(((self.lo[rows, cols] <= plane) & (plane <= self.hi[rows, cols])).any())

    def regions(self, plane: int, halo_px: int, align: int = 1, border: int = 0
                ) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int], np.ndarray]]:
        """``(crop box, core box, owned tiles)`` per rectangle; boxes are ``y0, y1, x0, x1`` px.

        Crop origins are multiples of ``align`` (the plane's coarse-grid step), so the coarse
        grid sits at the same place whatever else is on the plane: no shimmer over a shot.
        ``border``: the frame lies that far inside these bounds.  Only what lies within
        ``halo_px`` of the frame can reach it, so cores and crops end there (the frame's
        extension is as wide as the largest blur; a plane blurred less needs less of it).
        The owned tiles are those of the core's first tile row and column on.
        """
        active = (self.lo <= plane) & (plane <= self.hi)
        top, bottom = max(0, border - halo_px), min(self.height, self.height - border + halo_px)
        left, right = max(0, border - halo_px), min(self.width, self.width - border + halo_px)
        active[:top // _TILE] = False  # tiles wholly beyond that reach
        active[-(-bottom // _TILE):] = False
        active[:, :left // _TILE] = False
        active[:, -(-right // _TILE):] = False
        if not active.any():
            return []
        out = []
        for reg in plane_regions(active, halo_px / _TILE):
            core = (max(top, reg.r0 * _TILE), min(bottom, reg.r1 * _TILE),
                    max(left, reg.c0 * _TILE), min(right, reg.c1 * _TILE))
            crop = (max(top, core[0] - halo_px) // align * align, min(bottom, core[1] + halo_px),
                    max(left, core[2] - halo_px) // align * align, min(right, core[3] + halo_px))
            out.append((crop, core, reg.owned))
        return out


def _plane_rectangles(stack, tiles: _PlaneTiles, level_radius_px: float, border: int = 0):
    """``(plane, crop, core, owned tiles, clear sides)`` of every rectangle, planes near -> far
    (``border``: how far inside the tiles' bounds the frame lies)."""
    for plane in range(stack.count):
        radius = stack.radius_px(plane)
        scale = level_scale(radius, level_radius_px)
        # Reach of a blur on a grid s times coarser: the kernel, rounded up to whole
        # cells, plus the box-down / bilinear-up footprint.
        halo = scale * (math.ceil(radius / scale) + 2) + 1
        for crop, core, owned in tiles.regions(plane, halo, align=scale, border=border):
            # Sides where the crop kept its whole halo hold only zeros near the edge.
            clear = (core[0] - crop[0] >= halo, crop[1] - core[1] >= halo,
                     core[2] - crop[2] >= halo, crop[3] - core[3] >= halo)
            yield plane, crop, core, owned, clear


class _Lookahead:
    """Run ``work(*item)`` for submitted items on worker threads, ahead of their use.

    A plane's blur depends on nothing composited before it (only its occlusion does), so
    the next rectangles are blurred while the current one is composited; torch releases
    the GIL inside its kernels.  The first ``depth`` items start as soon as they are
    submitted (while the rest are still being worked out); then at most ``depth`` results
    are in flight or waiting, which bounds memory.  Leaving the ``with`` block early (an
    error, a cancel) drops the rest.
    """

    def __init__(self, work: Callable, workers: int = 2, depth: int = 3):
        self.work, self.depth = work, depth
        self.items: list[tuple] = []
        self.futures: dict[int, Future] = {}  # started, not yet handed out
        self.started = 0  # items are started in order
        self.handed = 0
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="focuspull-blur")

    def __enter__(self) -> "_Lookahead":
        return self

    def __exit__(self, *exc) -> None:
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)

    def submit(self, item: tuple) -> None:
        self.items.append(item)
        self._fill()

    def _fill(self) -> None:
        while self.started < len(self.items) and self.started <= self.handed + self.depth:
            self.futures[self.started] = self.pool.submit(self.work, *self.items[self.started])
            self.started += 1

    def results(self) -> Iterator[tuple[tuple, object]]:
        """``(item, work(*item))`` in submission order."""
        while self.handed < len(self.items):
            self._fill()
            i = self.handed
            result = self.futures.pop(i).result()
            self.handed += 1
            yield self.items[i], result


def render_coc(image: np.ndarray, coc_px: np.ndarray, *, aperture: Aperture | None = None,
               highlights: Highlights | None = None, plane_spacing_px: float = 1.0,
               device: str | torch.device = "cpu", level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX,
               dtype: torch.dtype = torch.float32, plane_growth: float = PLANE_GROWTH,
               cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """Render depth of field from a per-pixel signed CoC radius.

    Args:
        image: ``H x W x 3`` or ``H x W x 4`` scene-linear, alpha premultiplied.
        coc_px: ``H x W`` signed CoC radius in px (positive behind the focal plane).
        aperture: bokeh shape (default: round disc).
        highlights: bloom for display-referred input (default: none).
        plane_spacing_px: CoC distance between adjacent MPI planes (<= 1 px avoids banding).
        device: torch device to render on.
        level_radius_px: planes blurred more than twice this radius run on a coarser grid
            (speed); ``float('inf')`` renders every plane at full resolution.
        dtype: working precision (float32; float64 for reference checks).
        plane_growth: beyond ``plane_spacing_px / plane_growth`` px of CoC the planes are
            ``plane_growth * |CoC|`` apart (fewer planes where the blur is large); 0 keeps
            them uniform.
        cancelled: polled between planes; returning True raises :class:`Cancelled`.

    Returns:
        The rendered image, same shape, float32.  Pixels with CoC exactly 0 and no blurred
        neighbour in front are returned unchanged (a CoC of c puts weight |c| on the 1 px plane).

    Raises:
        InputError / DepthError for bad shapes, NaN/inf, or a CoC beyond half the frame
        diagonal (a bad depth sample; cap it with ``max_radius_px``).
    """
    image, coc_px = _check_inputs(image, coc_px)
    if not (plane_spacing_px > 0 and math.isfinite(plane_spacing_px)):
        raise InputError(f"plane spacing must be a positive number of px, got {plane_spacing_px}",
                         "use the default of 1.0 px")
    dev = torch.device(device)
    height, width, channels = image.shape
    with torch.no_grad():
        x = torch.from_numpy(image).to(dev, dtype).permute(2, 0, 1)[None]  # a view: copied once below
        if highlights is not None:
            x = apply_highlights(x, highlights)
            if not bool(torch.isfinite(x).all()):
                raise InputError(f"highlight gain {highlights.gain:g} above threshold {highlights.threshold:g} "
                                 f"boosts {int((~torch.isfinite(x)).any(dim=1).sum())} pixels beyond the float32 range",
                                 "use a smaller --highlight-gain (e.g. 4) or a higher --highlight-threshold")
        coc = torch.from_numpy(coc_px).to(dev, dtype)[None, None]
        reveal = float(coc.abs().max())
        border = frame_border_px(reveal, level_radius_px)
        x, coc = extend_borders(x, coc, border)
        x = x.contiguous()
        height, width = x.shape[-2:]
        stack = place_planes(float(coc.min()), float(coc.max()), plane_spacing_px, plane_growth)
        # The hidden layer works in plane units (its gaps are counted in planes).
        units = plane_units(coc, stack)
        del coc
        surface = hidden_surface(x, units, 1.0, reveal, align=_TILE)
        vis_f = units_coordinate(units, stack)
        tiles = _PlaneTiles.of(vis_f, on_stack=True)
        hidden = None
        if surface is not None and float(surface.mask.max()) > 0:
            hidden = _Hidden.of(surface, stack, height, width)
            tiles = tiles | hidden.tiles

        total = torch.zeros((1, channels + 1, height, width), device=dev, dtype=dtype)
        # T = clamp(1 - blurred coverage of every plane at least two planes nearer), kept
        # as it goes (coverage is >= 0, so clamping each step equals clamping the sum).
        transmittance = torch.ones((1, 1, height, width), device=dev, dtype=dtype)

        def blurred_layer(plane: int, crop, core, owned, clear) -> torch.Tensor:
            # Depends on nothing composited before it: runs ahead on a worker thread.
            y0, y1, x0, x1 = crop
            hid_here = hidden is not None and hidden.tiles.touches(plane, core)
            layer = _plane_layer(plane, core, owned, x, vis_f, hidden if hid_here else None)
            return blur_plane(layer, stack.radius_px(plane), aperture, level_radius_px, clear,
                              size=(y1 - y0, x1 - x0), offset=(core[0] - y0, core[2] - x0))

        # Blurred coverage of the previous plane and of this one: a plane occludes only from
        # two planes on (adjacent planes share split pixels).
        previous: list = []
        current: list = []
        current_plane = 0
        with _Lookahead(blurred_layer) as ahead:
            for rectangle in _plane_rectangles(stack, tiles, level_radius_px, border):
                ahead.submit(rectangle)
            for (plane, crop, *_), blurred in ahead.results():
                if cancelled is not None and cancelled():
                    raise Cancelled("render cancelled", "nothing of this frame was written")
                while current_plane < plane:
                    for cov, (y0, y1, x0, x1) in previous:
                        transmittance[..., y0:y1, x0:x1].sub_(cov).clamp_(0.0, 1.0)
                    previous, current, current_plane = current, [], current_plane + 1
                y0, y1, x0, x1 = crop
                # (A rectangle hidden behind nearer planes, T = 0, adds nothing and occludes
                # nothing new: checking for that costs more than it saves.)
                total[..., y0:y1, x0:x1].addcmul_(blurred, transmittance[..., y0:y1, x0:x1])
                current.append((blurred[:, -1:], crop))

        frame = (..., slice(border, height - border), slice(border, width - border))
        weight = total[:, -1:][frame]
        out = total[:, :-1][frame] / weight.clamp_min(1e-12)
        holes = weight <= 1e-12  # nothing landed there (rare): the pixel as it was
        if any_true(holes):
            out = torch.where(holes, x[frame], out)
        result = out[0].permute(1, 2, 0).to(torch.float32).cpu().numpy()
        _check_finite(result, image)
        return result


def _check_finite(result: np.ndarray, image: np.ndarray) -> None:
    """Non-finite output is never returned: say why instead (values near the float32 limit)."""
    finite = np.isfinite(result)
    if finite.all():
        return
    peak = float(np.abs(image).max())
    raise InputError(f"the render overflowed at {describe_bad_pixels(~finite.all(axis=2), 'NaN/inf')}: "
                     f"the plate's values reach {peak:.3g}, and summing them under the bokeh kernel "
                     "exceeds the float32 range",
                     "scale the plate's values down (they are far beyond any real light level) and render again")


def _plane_layer(plane, core, owned, x, vis_f, hidden: "_Hidden | None") -> torch.Tensor:
    """Premultiplied colour + coverage of one plane on ``core`` (the owned tiles' box),
    limited to owned tiles.  The crop's halo around it holds nothing of this rectangle: the
    blur places the core on the crop (no padded copy here)."""
    cy0, cy1, cx0, cx1 = core
    window = (..., slice(cy0, cy1), slice(cx0, cx1))
    own = None
    if not owned.all():
        # Only the tiles this rectangle owns: others belong to another rectangle (or none).
        # Masking the weights (one channel) masks colour and coverage alike.
        # (The core starts inside its first tile when it ends at the frame's reach.)
        dy, dx = cy0 % _TILE, cx0 % _TILE
        own = torch.from_numpy(np.kron(owned, np.ones((_TILE, _TILE), bool))[dy:dy + cy1 - cy0, dx:dx + cx1 - cx0]
                               ).to(x.device)
    w = plane_weight(vis_f[window], plane)
    if own is not None:
        w.mul_(own)
    channels = x.shape[1]
    # Written into one tensor (no concatenated copies): colour * weight, then coverage.
    layer = torch.empty((1, channels + 1, cy1 - cy0, cx1 - cx0), device=x.device, dtype=x.dtype)
    torch.mul(x[window], w, out=layer[:, :channels])
    layer[:, channels:] = w
    if hidden is not None:
        hidden.add_to(layer, plane, core, own)
    return layer


@dataclass(frozen=True)
class _Hidden:
    """The hidden surface as the planes see it: on ``box`` (tile-aligned start), its colour and
    stack coordinate (far off the stack where there is none: its tent weight is 0 there), and
    which tiles of the whole frame it touches (most rectangles have none of it)."""

    box: tuple[int, int, int, int]
    colour: torch.Tensor
    coordinate: torch.Tensor
    tiles: _PlaneTiles

    @classmethod
    def of(cls, surface: HiddenSurface, stack, height: int, width: int) -> "_Hidden":
        coordinate = where_finite(surface.mask, units_coordinate(surface.coc, stack), -FAR_AWAY)
        y0, y1, x0, x1 = surface.box
        assert y0 % _TILE == 0 and x0 % _TILE == 0, surface.box
        here = _PlaneTiles.of(coordinate)
        # Placed on the whole frame's tile grid; tiles outside the box touch no plane.
        lo = np.full((-(-height // _TILE), -(-width // _TILE)), np.inf, dtype=here.lo.dtype)
        hi = np.full_like(lo, -np.inf)
        rows, cols = slice(y0 // _TILE, y0 // _TILE + here.lo.shape[0]), slice(x0 // _TILE, x0 // _TILE + here.lo.shape[1])
        lo[rows, cols], hi[rows, cols] = here.lo, here.hi
        return cls(surface.box, surface.colour, coordinate, _PlaneTiles(lo, hi, height, width))

    def add_to(self, layer: torch.Tensor, plane: int, core, own) -> None:
        """Add this plane's share of the hidden surface to ``layer`` (on ``core``; ``own``: the
        rectangle's own pixels of it, or ``None`` for all)."""
        cy0, cy1, cx0, cx1 = core
        y0, y1, x0, x1 = self.box
        top, bottom, left, right = max(cy0, y0), min(cy1, y1), max(cx0, x0), min(cx1, x1)
        if top >= bottom or left >= right:
            return
        mine = (..., slice(top - y0, bottom - y0), slice(left - x0, right - x0))
        theirs = (..., slice(top - cy0, bottom - cy0), slice(left - cx0, right - cx0))
        w = plane_weight(self.coordinate[mine], plane)
        if own is not None:
            w.mul_(own[theirs])
        channels = self.colour.shape[1]
        layer[:, :channels][theirs] += self.colour[mine] * w
        layer[:, channels:][theirs] += w


def render_frame(image: np.ndarray, depth: np.ndarray, lens: Lens, *, depth_math: str = "depth",
                 aperture: Aperture | None = None, max_radius_px: float | None = None,
                 highlights: Highlights | None = None, plane_spacing_px: float = 1.0,
                 device: str | torch.device = "cpu", bad_depth: str = "error",
                 level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX) -> np.ndarray:
    """Depth of field for one frame: depth (any convention) + lens -> :func:`render_coc`.

    Example::

        out = focuspull.render_frame(rgb, z, ThinLens(50, 2.0, 36, focus_distance_m=3.0))
    """
    coc = coc_from_depth(depth, lens, depth_math, max_radius_px=max_radius_px, bad_depth=bad_depth)
    return render_coc(image, coc, aperture=aperture, highlights=highlights,
                      plane_spacing_px=plane_spacing_px, device=device,
                      level_radius_px=level_radius_px)
