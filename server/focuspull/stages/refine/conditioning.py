"""What the refiner sees: tone space, MPI band masks, the strength scalar.

Convention: torch tensors ``(N, C, H, W)``; colour is scene-linear light, CoC a signed radius in
px (positive behind the focal plane).  Pure functions, no weights.

* Tone space: ``tone(x) = sign(x) * log1p(|x|)`` -- invertible for any scene-linear value
  (HDR highlights of 100 become 4.6, negatives survive), so the network works on numbers of
  order 1 and the correction it predicts is relative, like a photographic stop.
* Band masks: the paper's focal-plane MPI.  ``N`` bands of ``|CoC| / K`` with thresholds
  ``t_i = (i / N) ** (1 / d_f)``; with ``d_f < 1`` the bands are finer near the focal plane,
  where a wrong CoC shows most.  Soft (1 px of CoC wide) edges, so the masks move smoothly
  in a focus pull instead of flickering between bands.
* Strength ``K``: the largest |CoC| of the frame (px), the seed's "K"; every band is
  relative to it, and it goes to the network through a Fourier (sinusoidal) embedding.
"""
from __future__ import annotations

import torch

#: CoC radii are divided by this before going to the network (so 16 px -> 1).
COC_SCALE_PX = 16.0


def tone(x: torch.Tensor) -> torch.Tensor:
    """Scene-linear -> tone space, ``sign(x) * log1p(|x|)`` (odd, monotonic, invertible)."""
    return torch.sign(x) * torch.log1p(x.abs())


def untone(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tone`."""
    return torch.sign(y) * torch.expm1(y.abs())


def band_thresholds(num_bands: int, exponent: float) -> torch.Tensor:
    """``t_i = (i / N) ** (1 / d_f)`` for ``i = 0..N`` (fractions of the strength K)."""
    i = torch.arange(num_bands + 1, dtype=torch.float64)
    return (i / num_bands) ** (1.0 / exponent)


def band_masks(coc_px: torch.Tensor, strength_px: torch.Tensor, num_bands: int, exponent: float,
               softness_px: float = 1.0) -> torch.Tensor:
    """Soft MPI band masks ``(N, num_bands, H, W)`` of ``|CoC|``, summing to 1 at every pixel.

    Args:
        coc_px: ``(N, 1, H, W)`` signed CoC radius.
        strength_px: ``(N,)`` the strength K of each frame (largest |CoC|; >= 1 px is used).
    """
    if coc_px.ndim != 4 or coc_px.shape[1] != 1:
        raise ValueError(f"coc_px must be (N, 1, H, W), got {tuple(coc_px.shape)}")
    k = strength_px.to(coc_px.dtype).clamp_min(1.0).view(-1, 1, 1, 1)
    edges = band_thresholds(num_bands, exponent).to(coc_px.device, coc_px.dtype).view(1, -1, 1, 1) * k
    edges = edges.clone()
    edges[:, -1] = float("inf")  # anything beyond K (capped CoC) is in the last band
    r = coc_px.abs()
    # Smooth step up at each threshold; band i = step(t_i) - step(t_{i+1}).
    steps = torch.sigmoid((r - edges) * (4.0 / softness_px))
    steps[:, 0] = 1.0  # |CoC| >= 0 always
    steps[:, -1] = 0.0
    return steps[:, :-1] - steps[:, 1:]


def frame_strength(coc_px: torch.Tensor) -> torch.Tensor:
    """Strength K of each frame of ``(N, 1, H, W)`` CoC: its largest |CoC| in px, shape ``(N,)``."""
    return coc_px.abs().flatten(1).amax(dim=1)


def model_inputs(all_in_focus: torch.Tensor, classical: torch.Tensor, coc_px: torch.Tensor,
                 strength_px: torch.Tensor, num_bands: int, band_exponent: float) -> torch.Tensor:
    """Stack the conditioning: ``tone(AiF) | tone(classical) | CoC/16 | bands`` -> ``(N, 7+B, H, W)``.

    ``strength_px`` is per frame and must come from the whole frame (not a tile), so every
    tile of a frame sees the same bands.
    """
    return torch.cat([tone(all_in_focus[:, :3]), tone(classical[:, :3]), coc_px / COC_SCALE_PX,
                      band_masks(coc_px, strength_px, num_bands, band_exponent)], dim=1)
