"""Blur one MPI plane with the aperture kernel at its CoC radius.

Tensors are ``1 x K x h x w`` (K channels blurred alike).  Kernels are convolved (a
point spreads into the aperture shape, not its mirror image).  Large radii run on a
coarser grid: a plane blurred by ``r`` px has no detail finer than ~``r`` px, so it is
box-downsampled by a power of two ``s`` that keeps the kernel at least
``level_radius_px`` wide, blurred with radius ``r / s`` and upsampled bilinearly.
Energy is preserved exactly by each step; edges of bokeh balls soften by ~``s`` px.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from focuspull.stages.aperture import Aperture, aperture_kernel

DEFAULT_LEVEL_RADIUS_PX = 12.0


def level_scale(radius_px: float, level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX) -> int:
    """Largest power of two ``s`` with ``radius_px / s >= level_radius_px`` (1 if none)."""
    if not math.isfinite(level_radius_px) or radius_px < 2 * level_radius_px:
        return 1
    return 2 ** int(math.floor(math.log2(radius_px / level_radius_px)))


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT sizes with small prime factors run fastest."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def convolve(x: torch.Tensor, kernel: torch.Tensor,
             clear: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> torch.Tensor:
    """'Same'-size linear convolution of every channel of ``x`` (1xKxhxw) with ``kernel``.

    ``clear`` says, for the top, bottom, left and right sides, whether ``x`` is already zero
    within the kernel radius of that side.  There a circular FFT of ``x``'s own size cannot
    wrap anything around, so no padding (and a smaller FFT) is needed.
    """
    ksize = kernel.shape[-1]
    radius = ksize // 2
    if ksize == 1:
        return x * kernel.reshape(())
    h, w = x.shape[-2:]
    if ksize == 3:
        # Exact, by nine shifted adds: the planes next to the focal plane are not occluded by
        # it (a split pixel must not hide itself), so FFT round-off there would touch
        # in-focus pixels.  (torch's CPU conv2d on one channel is slower than this or FFT.)
        padded = F.pad(x, (1, 1, 1, 1))
        out = torch.zeros_like(x)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out += kernel[dy + 1, dx + 1] * padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        return out
    top, bottom, left, right = (0 if side else radius for side in clear)
    x = F.pad(x, (left, right, top, bottom))
    fh, fw = _fast_len(h + top + bottom), _fast_len(w + left + right)
    # The kernel's centre at the origin, so the result needs no shift.
    centred = torch.roll(F.pad(kernel, (0, fw - ksize, 0, fh - ksize)), shifts=(-radius, -radius), dims=(0, 1))
    spectrum = torch.fft.rfft2(x, s=(fh, fw))
    spectrum *= torch.fft.rfft2(centred)
    full = torch.fft.irfft2(spectrum, s=(fh, fw))
    return full[..., top:top + h, left:left + w]


def blur_plane(layer: torch.Tensor, radius_px: float, aperture: Aperture | None,
               level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX,
               clear: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> torch.Tensor:
    """Blur a premultiplied layer (1xKxhxw) by the aperture at CoC radius ``radius_px``.

    ``clear``: sides (top, bottom, left, right) along which the layer is zero for at least
    ``radius + 2 * scale`` px (see :func:`convolve`).
    """
    radius = abs(radius_px)
    if radius <= 0.5:
        return layer  # the kernel is a delta
    scale = level_scale(radius, level_radius_px)
    h, w = layer.shape[-2:]
    small = layer
    if scale > 1:
        pad_h, pad_w = (-h) % scale, (-w) % scale
        small = F.avg_pool2d(F.pad(layer, (0, pad_w, 0, pad_h)), scale)
    kernel = torch.tensor(aperture_kernel(aperture, radius / scale), device=layer.device, dtype=layer.dtype)
    out = convolve(small, kernel, clear)
    if scale > 1:
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        out = out[..., :h, :w]
    return out
