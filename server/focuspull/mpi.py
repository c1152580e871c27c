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

# A hidden surface must lie at least this many planes behind the visible one: the
# renderer's occlusion ignores the two planes nearest a surface (its own soft split),
# so anything closer than 3 planes would leak through an in-focus surface.
HIDDEN_MIN_GAP_PLANES = 3


@dataclass(frozen=True)
class PlaneStack:
    """Planes at ``coc_px[i] = (first + i) * spacing_px``, ordered near -> far."""

    first: int
    count: int
    spacing_px: float

    @property
    def coc_px(self) -> np.ndarray:
        return (np.arange(self.count) + self.first).astype(np.float64) * self.spacing_px

    def radius_px(self, i: int) -> float:
        return abs((self.first + i) * self.spacing_px)


def place_planes(coc_min_px: float, coc_max_px: float, spacing_px: float = 1.0) -> PlaneStack:
    """Planes covering ``[coc_min_px, coc_max_px]``, ``spacing_px`` apart, one at CoC 0."""
    if not (spacing_px > 0 and math.isfinite(spacing_px)):
        raise ValueError(f"plane spacing must be > 0 px, got {spacing_px}")
    lo = min(0, math.floor(coc_min_px / spacing_px))
    hi = max(0, math.ceil(coc_max_px / spacing_px))
    return PlaneStack(first=lo, count=hi - lo + 1, spacing_px=float(spacing_px))


def plane_coordinate(coc_px: torch.Tensor, stack: PlaneStack) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower plane index and tent weight of the upper one.

    Returns ``(index, frac)``: the pixel has weight ``1 - frac`` on plane ``index`` and
    ``frac`` on plane ``index + 1`` (``frac`` is 0 for pixels exactly on a plane).
    """
    f = coc_px / stack.spacing_px - stack.first
    f = f.clamp(0, stack.count - 1)
    index = torch.floor(f)
    frac = f - index
    # The last plane has no upper neighbour: fold its (zero) weight back onto it.
    top = index >= stack.count - 1
    index = torch.where(top, torch.full_like(index, stack.count - 1), index)
    frac = torch.where(top, torch.zeros_like(frac), frac)
    return index.to(torch.int32), frac


def plane_weight(index: torch.Tensor, frac: torch.Tensor, plane: int) -> torch.Tensor:
    """Tent weight of every pixel on one plane (float, same shape as ``frac``)."""
    lower = (index == plane).to(frac.dtype) * (1.0 - frac)
    upper = (index == plane - 1).to(frac.dtype) * frac
    return lower + upper


def _max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Square grey dilation of ``1x1xHxW`` by ``radius`` px, separable."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    x = F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))
    return F.max_pool2d(x, (1, k), stride=1, padding=(0, radius))


def _coarse_max_filter(coc: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation by about ``radius`` px computed on a coarser grid (cheap for large radii)."""
    step = max(1, radius // 8)
    if step == 1:
        return _max_filter(coc, radius)
    h, w = coc.shape[-2:]
    coarse = F.max_pool2d(coc, step, stride=step, ceil_mode=True)
    coarse = _max_filter(coarse, math.ceil(radius / step))
    return F.interpolate(coarse, scale_factor=step, mode="nearest")[..., :h, :w]


def _push_pull(values: torch.Tensor, weight: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill every pixel with a weighted average of the nearest known pixels (pyramid).

    values: ``1xCxHxW``; weight: ``1x1xHxW`` averaging weights (0 where unknown);
    known: ``1x1xHxW`` 0/1, how much of a pixel is known (controls blending per level).
    """
    levels = [(values * weight, weight, known)]
    while min(levels[-1][0].shape[-2:]) > 1:
        v, w, k = levels[-1]
        levels.append(tuple(F.avg_pool2d(t, 2, ceil_mode=True) for t in (v, w, k)))
    v, w, _ = levels[-1]
    filled = v / w.clamp_min(1e-30)
    for v, w, k in reversed(levels[:-1]):
        up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        own = v / w.clamp_min(1e-30)
        a = (k * 2.0).clamp(0, 1)
        filled = a * own + (1 - a) * up
    return filled


def hidden_layer(image: torch.Tensor, coc: torch.Tensor, spacing_px: float,
                 reveal_radius_px: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimate the background hidden behind foreground edges.

    Args:
        image: ``1xCxHxW`` premultiplied colour (alpha, if any, as the last channel).
        coc: ``1x1xHxW`` signed CoC radius in px.
        spacing_px: plane spacing (the gap test is in planes).
        reveal_radius_px: how far under a foreground edge the background can be seen
            (the largest blur radius in the frame).

    Returns:
        ``(colour 1xCxHxW, coc 1x1xHxW, mask 1x1xHxW)``: where ``mask`` is 1 there is a
        hidden surface with that colour and CoC at least 3 planes behind the visible one.
    """
    radius = int(math.ceil(reveal_radius_px))
    if radius < 1:
        empty = torch.zeros_like(coc)
        return torch.zeros_like(image), coc, empty
    far = _coarse_max_filter(coc, radius)
    gap = HIDDEN_MIN_GAP_PLANES * spacing_px
    occluder = (far - coc) >= gap
    if not bool(occluder.any()):
        return torch.zeros_like(image), coc, torch.zeros_like(coc)
    known = (~occluder).to(image.dtype)
    # Prefer the farthest nearby surface: exp weights make a surface one plane farther
    # count ~e^1.3 times more, so background wins over the foreground interior.
    rel = (coc - coc.amax()) / max(spacing_px, 1e-6)
    depth_weight = torch.exp((1.3 * rel).clamp(min=-60.0))
    filled = _push_pull(torch.cat([image, coc], dim=1), known * depth_weight, known)
    hidden_colour, hidden_coc = filled[:, :-1], filled[:, -1:]
    mask = occluder & ((hidden_coc - coc) >= gap)
    return hidden_colour, hidden_coc, mask.to(image.dtype)
