"""Ground truth for the refiner: a layered scene ray-traced through a thin lens.

A scene is a stack of fronto-parallel RGBA layers (premultiplied, scene-linear) at depths
``z_l``, the farthest opaque.  A thin lens focused at disparity ``d_f`` with radius constant
``k_px`` blurs a point at disparity ``d`` into a disc of signed radius
``c = k_px * (d_f - d)`` (the project's CoC convention).  Tracing a ray from pixel ``p``
through the aperture point ``a`` (unit disc, or the blade polygon) therefore meets layer
``l`` at the pinhole-image position ``p + a * c_l``; the layers are composited front to
back along that ray, and the picture is the mean over aperture samples.  Unlike the
pinhole image the network gets, these rays see around near layers: what hides behind a
blurred foreground edge, and emitters behind in-focus objects.

Convention: torch ``(L, 4, H, W)`` layers (premultiplied RGBA) on a canvas larger than the
frame by ``margin`` px on every side; frames ``(H, W, 3)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from focuspull.stages.aperture import Aperture, _inside  # the one definition of the blade shape


def aperture_samples(aperture: Aperture, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` points (x right, y down) in the unit aperture: a jittered grid kept inside the shape."""
    side = int(math.ceil(math.sqrt(count * 4.0 / math.pi))) + 1
    g = (np.arange(side) + 0.5) / side * 2.0 - 1.0
    x, y = np.meshgrid(g, g)
    x = x + (rng.random(x.shape) - 0.5) * (2.0 / side)
    y = y + (rng.random(y.shape) - 0.5) * (2.0 / side)
    keep = _inside(aperture, x, y, 1.0)
    return np.stack([x[keep], y[keep]], axis=1).astype(np.float32)


def cell_width(samples: np.ndarray) -> float:
    """Width (in unit-aperture units) of the aperture cell each sample stands for."""
    return float(math.sqrt(math.pi / max(len(samples), 1)))


def box_blur(image: torch.Tensor, width_px: float) -> torch.Tensor:
    """Separable box blur of ``(C, H, W)`` with a fractional width (exact pixel coverage)."""
    if width_px <= 1.0:
        return image
    radius = int(math.ceil(width_px / 2.0))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    half = width_px / 2.0
    taps = (torch.minimum(x + 0.5, torch.tensor(half)) - torch.maximum(x - 0.5, torch.tensor(-half))).clamp_min(0)
    taps = taps / taps.sum()
    c = image.shape[0]
    img = F.pad(image[None], (radius, radius, radius, radius), mode="replicate")
    img = F.conv2d(img, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    img = F.conv2d(img, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return img[0]


def trace(layers: torch.Tensor, coc_px: torch.Tensor, margin: int, samples: np.ndarray,
          offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Thin-lens render ``(3, H, W)`` of ``layers (L, 4, H+2m, W+2m)`` ordered near -> far.

    ``coc_px (L,)``: each layer's signed CoC radius; ``offsets (L, 2)``: each layer's
    displacement (x, y px) at this frame (moving layers).  An aperture sample at (0, 0)
    is the pinhole image.

    Each sample stands for a cell of the aperture; the layer it meets is box-filtered over
    that cell's footprint (``|c_l| x`` the cell width) first, so a small emitter becomes a
    smooth bokeh ball rather than a pattern of dots (a cone, not a ray, per sample).
    """
    cell = cell_width(samples)
    layers = torch.stack([box_blur(layers[l], abs(float(coc_px[l])) * cell) for l in range(layers.shape[0])])
    n_layers, _, hc, wc = layers.shape
    h, w = hc - 2 * margin, wc - 2 * margin
    ys = torch.arange(h, dtype=torch.float32) + margin
    xs = torch.arange(w, dtype=torch.float32) + margin
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    if offsets is not None:  # content moves by +offset: sample at p - offset
        gx = gx[None] - offsets[:, 0].view(-1, 1, 1)
        gy = gy[None] - offsets[:, 1].view(-1, 1, 1)
    else:
        gx, gy = gx[None], gy[None]
    out = torch.zeros((3, h, w))
    for ax, ay in samples:
        # One grid per layer: where this ray meets it, in canvas px -> normalised [-1, 1].
        sx = gx + float(ax) * coc_px.view(-1, 1, 1)
        sy = gy + float(ay) * coc_px.view(-1, 1, 1)
        grid = torch.stack([(sx + 0.5) / wc * 2 - 1, (sy + 0.5) / hc * 2 - 1], dim=-1)
        seen = F.grid_sample(layers, grid, mode="bilinear", padding_mode="border", align_corners=False)
        colour = torch.zeros((3, h, w))
        transmit = torch.ones((1, h, w))
        for l in range(n_layers):  # front to back, "over"
            colour = colour + transmit * seen[l, :3]
            transmit = transmit * (1.0 - seen[l, 3:4]).clamp(0.0, 1.0)
        out += colour
    return out / len(samples)


def pinhole(layers: torch.Tensor, depth_m: torch.Tensor, margin: int,
            offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All-in-focus image ``(3, H, W)`` and the depth ``(H, W)`` a depth pass would give.

    The depth of a pixel is the depth of the first layer whose alpha there exceeds 0.5
    (like Cycles' Z of the nearest surface hit); the image is the front-to-back composite.
    """
    core = shifted(layers, margin, offsets)
    colour = torch.zeros_like(core[0, :3])
    transmit = torch.ones_like(core[0, 3:4])
    depth = torch.full(core.shape[-2:], float(depth_m[-1]))
    found = torch.zeros(core.shape[-2:], dtype=torch.bool)
    for l in range(core.shape[0]):
        colour = colour + transmit * core[l, :3]
        transmit = transmit * (1.0 - core[l, 3:4]).clamp(0.0, 1.0)
        hit = (core[l, 3] > 0.5) & ~found
        depth = torch.where(hit, float(depth_m[l]), depth)
        found |= hit
    return colour, depth


def shifted(layers: torch.Tensor, margin: int, offsets: torch.Tensor | None) -> torch.Tensor:
    """The frame-sized part of every layer ``(L, 4, H, W)``, each moved by its offset."""
    if offsets is None:
        return layers[..., margin:layers.shape[-2] - margin, margin:layers.shape[-1] - margin]
    _, _, hc, wc = layers.shape
    ys = torch.arange(hc - 2 * margin, dtype=torch.float32) + margin
    xs = torch.arange(wc - 2 * margin, dtype=torch.float32) + margin
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sx = gx[None] - offsets[:, 0].view(-1, 1, 1)
    sy = gy[None] - offsets[:, 1].view(-1, 1, 1)
    grid = torch.stack([(sx + 0.5) / wc * 2 - 1, (sy + 0.5) / hc * 2 - 1], dim=-1)
    return F.grid_sample(layers, grid, mode="bilinear", padding_mode="border", align_corners=False)
