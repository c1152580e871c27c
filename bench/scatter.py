"""Classical scatter bokeh: the baseline focuspull is measured against (quality and speed).

The algorithm of BokehMe's classical renderer, without its extras (no highlight boost, no
gamma): every pixel splats a soft-edged disc of its own CoC radius ``|coc_px|``, each splat
normalised to unit energy; colour and weight are accumulated separately and divided at the end,
``out = sum(w * c) / sum(w)``.  There is no occlusion handling: a sharp foreground pixel does not
hide the blurred background splatting over it.  That is exactly the failure mode (halos,
background bleeding over in-focus edges) the layered renderer exists to fix.

Implementation: torch on the CPU, a loop over splat *offsets* rather than pixels.  A splat's
weight depends only on the source pixel's radius and the offset's length, so all offsets of the
same length share one weight image; each offset then costs two shifted in-place adds.  The loop
runs over (2R+1)^2 offsets for the largest radius R in the image, each a whole-image vector op.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _disc_coverage(radius_px: torch.Tensor, dist_px: float) -> torch.Tensor:
    """Soft disc edge: 1 inside, 0 outside, a 1-px linear ramp centred on the radius."""
    return (radius_px + 0.5 - dist_px).clamp_(0.0, 1.0)


def _splat_offsets(max_radius_px: float) -> dict[float, list[tuple[int, int]]]:
    """Integer offsets (dy, dx) a disc of this radius can reach, grouped by their length."""
    reach = int(math.floor(max_radius_px + 0.5))
    groups: dict[float, list[tuple[int, int]]] = {}
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            d2 = dy * dy + dx * dx
            if d2 < (max_radius_px + 0.5) ** 2:
                groups.setdefault(math.sqrt(d2), []).append((dy, dx))
    return groups


def splat_area(radius_px: np.ndarray, groups: dict[float, list[tuple[int, int]]]) -> np.ndarray:
    """Sum over offsets of the soft-disc coverage, per radius: each splat's normaliser.

    The sum is piecewise linear in the radius with breakpoints at ``dist +- 0.5``, so linear
    interpolation on those breakpoints is exact (not an approximation of the disc area pi r^2).
    """
    dists = np.array(sorted(groups), dtype=np.float64)
    counts = np.array([len(groups[d]) for d in sorted(groups)], dtype=np.float64)
    knots = np.unique(np.concatenate([[0.0], np.maximum(dists - 0.5, 0.0), dists + 0.5]))
    area = (np.clip(knots[:, None] + 0.5 - dists[None, :], 0.0, 1.0) * counts[None, :]).sum(axis=1)
    return np.interp(radius_px, knots, area)


def scatter_render(image: np.ndarray, coc_px: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Blur ``image`` by splatting every pixel as a disc of radius ``|coc_px|``.

    Args:
        image: ``H x W x C`` float32, scene-linear (C = 3 or 4; alpha is treated like colour).
        coc_px: ``H x W`` signed CoC radius in pixels (the sign is ignored: no occlusion).
        threads: torch intra-op threads for this call (None leaves torch's setting alone).

    Returns:
        ``H x W x C`` float32.  Pixels with ``coc_px == 0`` whose neighbours are also in focus
        come back unchanged; total energy is conserved wherever the weight sum is 1 (away from
        the borders with a uniform CoC).
    """
    image = np.asarray(image, dtype=np.float32)
    coc_px = np.asarray(coc_px, dtype=np.float32)
    if image.ndim != 3 or coc_px.shape != image.shape[:2]:
        raise ValueError(f"need image H x W x C and coc_px H x W, got {image.shape} and {coc_px.shape}")
    if not np.all(np.isfinite(coc_px)):
        raise ValueError("coc_px has non-finite values; clamp it (e.g. max_radius_px) before scattering")
    radius = np.abs(coc_px)
    h, w, c = image.shape
    groups = _splat_offsets(float(radius.max()))
    reach = max(abs(dy) for offsets in groups.values() for dy, _ in offsets)
    inv_area = (1.0 / splat_area(radius, groups)).astype(np.float32)

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            r = torch.from_numpy(radius)
            norm = torch.from_numpy(inv_area)
            colour = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # C x H x W
            # Accumulators padded by the reach so every shifted add is a plain slice.
            acc_colour = torch.zeros((c, h + 2 * reach, w + 2 * reach))
            acc_weight = torch.zeros((h + 2 * reach, w + 2 * reach))
            for dist, offsets in groups.items():
                weight = _disc_coverage(r, dist).mul_(norm)
                if not bool(weight.any()):
                    continue
                weighted = colour * weight
                for dy, dx in offsets:
                    ys, xs = reach + dy, reach + dx
                    acc_weight[ys:ys + h, xs:xs + w].add_(weight)
                    acc_colour[:, ys:ys + h, xs:xs + w].add_(weighted)
            acc_colour = acc_colour[:, reach:reach + h, reach:reach + w]
            acc_weight = acc_weight[reach:reach + h, reach:reach + w]
            # Every pixel splats onto itself (centre coverage >= 0.5), so the weight is > 0.
            out = acc_colour / acc_weight
    finally:
        torch.set_num_threads(previous_threads)
    return np.ascontiguousarray(out.numpy().transpose(1, 2, 0), dtype=np.float32)
