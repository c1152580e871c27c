"""Blur one MPI plane with the aperture kernel at its CoC radius.

Tensors are ``1 x K x h x w`` (K channels blurred alike).  Kernels are convolved (a
point spreads into the aperture shape, not its mirror image).  The FFT blurs two real
channels with one complex transform (as its real and imaginary parts, which a real kernel
never mixes): the complex-to-real inverse of a real FFT is the slowest transform on the
CPU, and this needs none.  Large radii run on a coarser grid: a plane blurred by ``r`` px
has no detail finer than ~``r`` px, so it is box-downsampled by a power of two ``s`` that
keeps the kernel at least ``level_radius_px`` wide, blurred with radius ``r / s`` and
upsampled bilinearly.  Energy is preserved exactly by each step; edges of bokeh balls
soften by ~``s`` px.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
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


# Kernel spectra are reused across rectangles and frames: a plane at the same radius over a
# rectangle of the same FFT size (sizes are rounded to 2^a 3^b 5^c, so they repeat) needs the
# same spectrum.  Bounded by bytes, least recently used first out.
_SPECTRUM_CACHE_BYTES = 256 * 2**20
_spectra: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_spectra_bytes = 0
_spectra_lock = threading.Lock()


def kernel_spectrum(kernel: np.ndarray, fh: int, fw: int, dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """Complex ``fft2`` of ``kernel`` centred at the origin of an ``fh x fw`` grid (cached)."""
    global _spectra_bytes
    key = (kernel.tobytes(), kernel.shape, fh, fw, dtype, str(device))
    with _spectra_lock:
        hit = _spectra.get(key)
        if hit is not None:
            _spectra.move_to_end(key)
            return hit
    k = torch.tensor(kernel, device=device, dtype=dtype)  # a copy: cached kernels are read-only
    r = kernel.shape[-1] // 2
    # The kernel's centre at the origin (wrapped), so the convolution needs no shift.
    centred = torch.roll(F.pad(k, (0, fw - k.shape[-1], 0, fh - k.shape[-2])), shifts=(-r, -r), dims=(0, 1))
    spectrum = torch.fft.fft2(centred.to(_complex(dtype)))
    size = spectrum.numel() * spectrum.element_size()
    with _spectra_lock:
        if key not in _spectra:
            _spectra[key] = spectrum
            _spectra_bytes += size
            while _spectra_bytes > _SPECTRUM_CACHE_BYTES and len(_spectra) > 1:
                _, old = _spectra.popitem(last=False)
                _spectra_bytes -= old.numel() * old.element_size()
    return spectrum


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _place(x: torch.Tensor, size: tuple[int, int], offset: tuple[int, int]) -> torch.Tensor:
    """``x`` at ``offset`` on a zero canvas of ``size`` (itself when it already fills it)."""
    (h, w), (oy, ox) = size, offset
    ch, cw = x.shape[-2:]
    if (oy, ox, ch, cw) == (0, 0, h, w):
        return x
    return F.pad(x, (ox, w - ox - cw, oy, h - oy - ch))


def _zero_around(canvas: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> None:
    """Zero ``canvas`` outside rows ``y0:y1`` x columns ``x0:x1`` (which the caller fills)."""
    canvas[..., :y0, :] = 0
    canvas[..., y1:, :] = 0
    canvas[..., y0:y1, :x0] = 0
    canvas[..., y0:y1, x1:] = 0


def convolve(x: torch.Tensor, kernel, clear: tuple[bool, bool, bool, bool] = (False, False, False, False),
             size: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """'Same'-size linear convolution of every channel of ``x`` (1xKxhxw) with ``kernel``.

    ``size``/``offset``: ``x`` is the non-zero part of a larger ``size`` canvas, at ``offset``
    (default: ``x`` is the whole canvas); the result has the canvas size.  ``clear`` says, for
    the top, bottom, left and right sides, whether the canvas is already zero within the
    kernel radius of that side.  Where both sides of an axis are, a circular FFT of the
    canvas's own size cannot wrap anything around; otherwise the FFT is ``radius`` longer
    (zeros past the end catch the wrap of both sides).  Sizes are rounded up to
    ``2^a 3^b 5^c``.
    """
    kernel_np = kernel.detach().cpu().numpy() if isinstance(kernel, torch.Tensor) else np.asarray(kernel)
    ksize = kernel_np.shape[-1]
    radius = ksize // 2
    h, w = size if size is not None else x.shape[-2:]
    if ksize == 1:
        return _place(x * float(kernel_np.reshape(())), (h, w), offset)
    if ksize == 3:
        # Exact, by nine shifted adds: the planes next to the focal plane are not occluded by
        # it (a split pixel must not hide itself), so FFT round-off there would touch
        # in-focus pixels.  (torch's CPU conv2d on one channel is slower than this or FFT.)
        x = _place(x, (h, w), offset)
        padded = F.pad(x, (1, 1, 1, 1))
        out = torch.zeros_like(x)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out += float(kernel_np[dy + 1, dx + 1]) * padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        return out
    top, bottom, left, right = clear
    # Always a fast length (a prime-sized FFT runs ~6x slower): zeros past the end are harmless.
    fh = _fast_len(h if (top and bottom) else h + radius)
    fw = _fast_len(w if (left and right) else w + radius)
    oy, ox = offset
    n, k, ch, cw = x.shape
    half = k // 2
    # Channels 2i and 2i+1 become the real and imaginary parts of complex channel i.
    canvas = torch.empty((n, k - half, fh, fw), dtype=_complex(x.dtype), device=x.device)
    _zero_around(canvas, oy, oy + ch, ox, ox + cw)
    parts = torch.view_as_real(canvas)[:, :, oy:oy + ch, ox:ox + cw]
    parts[:, :half].copy_(x[:, :2 * half].view(n, half, 2, ch, cw).permute(0, 1, 3, 4, 2))
    if k % 2:
        parts[:, half, ..., 0] = x[:, -1]
        parts[:, half, ..., 1] = 0
    spectrum = torch.fft.fft2(canvas)
    del canvas, parts
    spectrum *= kernel_spectrum(kernel_np, fh, fw, x.dtype, x.device)
    full = torch.view_as_real(torch.fft.ifft2(spectrum))[:, :, :h, :w]
    return full.permute(0, 1, 4, 2, 3).reshape(n, -1, h, w)[:, :k]


def blur_plane(layer: torch.Tensor, radius_px: float, aperture: Aperture | None,
               level_radius_px: float = DEFAULT_LEVEL_RADIUS_PX,
               clear: tuple[bool, bool, bool, bool] = (False, False, False, False),
               size: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Blur a premultiplied layer (1xKxhxw) by the aperture at CoC radius ``radius_px``.

    ``size``/``offset``: the layer is the non-zero part of a ``size`` canvas at ``offset``
    (default: the layer is the canvas); the result has the canvas size.  ``clear``: sides
    (top, bottom, left, right) along which the canvas is zero for at least
    ``radius + 2 * scale`` px (see :func:`convolve`).
    """
    h, w = size if size is not None else layer.shape[-2:]
    radius = abs(radius_px)
    if radius <= 0.5:
        return _place(layer, (h, w), offset)  # the kernel is a delta
    scale = level_scale(radius, level_radius_px)
    kernel = aperture_kernel(aperture, radius / scale)
    if scale == 1:
        return convolve(layer, kernel, clear, (h, w), offset)
    oy, ox = offset
    if oy % scale or ox % scale:  # not on the coarse grid: place it first
        layer, (oy, ox) = _place(layer, (h, w), offset), (0, 0)
    ch, cw = layer.shape[-2:]
    small = F.avg_pool2d(F.pad(layer, (0, (-cw) % scale, 0, (-ch) % scale)), scale)
    out = convolve(small, kernel, clear, (-(-h // scale), -(-w // scale)), (oy // scale, ox // scale))
    out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
    return out[..., :h, :w]
