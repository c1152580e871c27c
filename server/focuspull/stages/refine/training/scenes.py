"""Random layered clips for training: textures, cut-outs, thin occluders, HDR emitters,
moving layers and focus pulls, rendered by :mod:`.raytrace` (truth) and by the project's
classical renderer (the refiner's input).

Every clip is a pure function of its integer seed, so the training and validation splits
are disjoint ranges of seeds (:data:`VALIDATION_SEED0`) and any step can be replayed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from focuspull.stages.aperture import Aperture
from focuspull.stages.refine.training.raytrace import aperture_samples, pinhole, trace

#: Seeds at or above this are the validation split; training seeds stay below it.
VALIDATION_SEED0 = 1_000_000_000


@dataclass
class Clip:
    """One training clip, ``T`` frames of ``H x W``.

    Attributes:
        all_in_focus: ``(T, H, W, 3)`` pinhole render (what a camera with depth gives).
        coc_px: ``(T, H, W)`` signed CoC from the pinhole depth (possibly perturbed).
        classical: ``(T, H, W, 3)`` focuspull's layered render of ``all_in_focus`` with ``coc_px``.
        truth: ``(T, H, W, 3)`` the thin-lens ray-traced render.
        strength_px: ``(T,)`` strength K when the clip is a crop of larger frames (K is the
            whole frame's largest |CoC|, as at inference); ``None``: from ``coc_px``.
    """

    all_in_focus: np.ndarray
    coc_px: np.ndarray
    classical: np.ndarray
    truth: np.ndarray
    strength_px: np.ndarray | None = None  # (T,) strength K of the whole frames (crops); None = from coc_px


def _noise(rng: np.random.Generator, channels: int, h: int, w: int, cells: int) -> torch.Tensor:
    base = torch.from_numpy(rng.random((1, channels, cells, cells), dtype=np.float32))
    return F.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)[0]


def _texture(rng: np.random.Generator, h: int, w: int) -> torch.Tensor:
    """Scene-linear colour ``(3, H, W)``: smooth colour noise plus a high-frequency octave or stripes."""
    tint = torch.from_numpy(rng.uniform(0.05, 1.0, (3, 1, 1)).astype(np.float32))
    tex = _noise(rng, 3, h, w, int(rng.integers(2, 8))) * 0.6 + 0.4
    detail = _noise(rng, 1, h, w, int(rng.integers(8, 32)))
    if rng.random() < 0.4:
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        angle, period = rng.uniform(0, math.pi), rng.uniform(3, 12)
        detail = 0.5 + 0.5 * torch.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)[None]
    return (tex * (0.5 + 0.7 * detail) * tint * float(rng.uniform(0.2, 1.0))).clamp_min(0.0)


def _cutout(rng: np.random.Generator, h: int, w: int) -> torch.Tensor:
    """Coverage ``(1, H, W)`` of a cut-out: noise blobs or an ellipse, anti-aliased edge."""
    if rng.random() < 0.5:
        field = _noise(rng, 1, h, w, int(rng.integers(3, 7)))
        level = float(rng.uniform(0.5, 0.7))
        return ((field - level) * 40.0).clamp(0.0, 1.0)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = rng.uniform(0.1, 0.35) * h, rng.uniform(0.1, 0.35) * w
    r = torch.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return ((1.0 - r) * min(ry, rx)).clamp(0.0, 1.0)[None]


def _thin_lines(rng: np.random.Generator, h: int, w: int) -> torch.Tensor:
    """Coverage of a few thin straight occluders (branches, wires, fence posts), 1-3 px wide."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cover = torch.zeros((h, w))
    for _ in range(int(rng.integers(1, 4))):
        angle = rng.uniform(0, math.pi)
        px, py = rng.uniform(0, w), rng.uniform(0, h)
        dist = ((xx - px) * math.sin(angle) - (yy - py) * math.cos(angle)).abs()
        half = rng.uniform(0.5, 1.5)
        cover = torch.maximum(cover, (half + 0.5 - dist).clamp(0.0, 1.0))
    return cover[None]


def _emitters(rng: np.random.Generator, colour: torch.Tensor, cover: torch.Tensor, count: int) -> None:
    """Small HDR discs (3..40 x brighter), drawn into colour where the layer is opaque."""
    _, h, w = colour.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for _ in range(count):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.5, 2.0)
        disc = (r + 0.5 - torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)).clamp(0.0, 1.0)
        value = torch.from_numpy(rng.uniform(0.5, 1.0, (3, 1, 1)).astype(np.float32)) * float(rng.uniform(3, 40))
        colour.mul_(1 - disc).add_(disc * value)
        cover.copy_(torch.maximum(cover, disc))


def _hide_emitters(rng: np.random.Generator, layers: list[torch.Tensor], front: int) -> None:
    """Put 2-6 HDR emitters on layers behind ``front``, on its cut-out's outline (within 3 px):
    partly or wholly hidden behind it in the pinhole image, seen around by the lens."""
    cover = layers[front][3]
    edge = torch.nonzero((cover > 0.05) & (cover < 0.95))
    if len(edge) == 0:
        return
    h, w = cover.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for _ in range(int(rng.integers(2, 7))):
        cy, cx = (float(v) + rng.uniform(-3, 3) for v in edge[int(rng.integers(len(edge)))])
        r = rng.uniform(0.7, 2.5)
        disc = (r + 0.5 - torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)).clamp(0.0, 1.0)
        value = torch.from_numpy(rng.uniform(0.3, 1.0, (3, 1, 1)).astype(np.float32)) * float(rng.uniform(10, 80))
        far = layers[int(rng.integers(front + 1, len(layers)))]  # premultiplied: colour * cover, cover
        far[:3].mul_(1 - disc).add_(disc * value)
        far[3:].copy_(torch.maximum(far[3:], disc))


def random_scene(rng: np.random.Generator, h: int, w: int, margin: int,
                 hidden_rng: np.random.Generator | None = None) -> tuple[torch.Tensor, np.ndarray, int | None]:
    """Layers ``(L, 4, H+2m, W+2m)`` near -> far (premultiplied), their depths in metres, and
    (with ``hidden_rng``) the layer an emitter hides behind, which the clip then focuses on."""
    hc, wc = h + 2 * margin, w + 2 * margin
    count = int(rng.integers(2, 5))  # in front of the background
    depths = np.sort(rng.uniform(0.6, 12.0, count + 1)).astype(np.float32)
    depths[-1] = max(depths[-1], float(rng.uniform(6.0, 30.0)))
    layers = []
    for i in range(count + 1):
        colour = _texture(rng, hc, wc)
        if i == count:
            cover = torch.ones((1, hc, wc))
        elif rng.random() < 0.3:
            cover = _thin_lines(rng, hc, wc)
        else:
            cover = _cutout(rng, hc, wc)
        if rng.random() < (0.7 if i == count else 0.3):
            _emitters(rng, colour, cover, int(rng.integers(1, 8)))
        layers.append(torch.cat([colour * cover, cover], dim=0))
    front = None
    if hidden_rng is not None:
        # A cut-out in front of the others hides emitters behind its outline (as an in-focus
        # object hides point lights that a real lens sees around).
        front = int(hidden_rng.integers(0, count))
        cover = _cutout(hidden_rng, hc, wc)
        layers[front] = torch.cat([_texture(hidden_rng, hc, wc) * cover, cover], dim=0)
        _hide_emitters(hidden_rng, layers, front)
    return torch.stack(layers), depths, front


def perturb_depth(depth_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Depth as an estimator would give it (training stage 2): disparity scale/shift jitter,
    noise, and dilation or erosion of depth edges by 1-2 px."""
    disparity = torch.from_numpy(1.0 / depth_m)[:, None]
    scale, shift = rng.uniform(0.9, 1.1), rng.uniform(-0.03, 0.03) * float(disparity.max())
    disparity = disparity * scale + shift
    disparity = disparity + torch.from_numpy(rng.normal(0, 0.01, disparity.shape).astype(np.float32)) * float(disparity.max())
    size = int(rng.integers(1, 3)) * 2 + 1
    if rng.random() < 0.5:
        disparity = F.max_pool2d(disparity, size, stride=1, padding=size // 2)  # near grows (dilation)
    else:
        disparity = -F.max_pool2d(-disparity, size, stride=1, padding=size // 2)  # near shrinks (erosion)
    disparity = disparity.clamp_min(1.0 / 100.0)
    return (1.0 / disparity[:, 0]).numpy().astype(np.float32)


#: The extra random stream of clips with hidden emitters (``hidden_fraction``).
HIDDEN_STREAM = 7


def make_clip(seed: int, frames: int, size: int, *, perturb: bool = False, max_coc_px: float = 14.0,
              aperture_count: int = 96, hidden_fraction: float = 0.0) -> Clip:
    """Render clip ``seed``: ``frames`` frames of ``size x size`` with moving layers and a focus pull.

    ``hidden_fraction``: the share of seeds whose clip hides emitters behind the outline of a
    layer in focus (drawn from a separate stream: the other seeds give the clips they give
    with 0).
    """
    from focuspull.stages.render.layered import render_coc  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    motion = float(rng.uniform(0.0, 2.0))  # px per frame at most
    margin = int(math.ceil(max_coc_px + motion * frames)) + 2
    hidden_rng = np.random.default_rng((seed, HIDDEN_STREAM))
    hidden = hidden_fraction > 0 and hidden_rng.random() < hidden_fraction
    layers, depths, front = random_scene(rng, size, size, margin, hidden_rng if hidden else None)
    aperture = Aperture(blades=int(rng.choice([0, 0, 5, 6, 7, 8])), rotation_deg=float(rng.uniform(0, 60)))
    samples = aperture_samples(aperture, aperture_count, rng)
    velocity = torch.from_numpy(rng.uniform(-motion, motion, (len(depths), 2)).astype(np.float32))
    disparities = 1.0 / depths
    # Focus pull: focus disparity moves linearly between two points inside the scene's range.
    d0, d1 = (float(rng.uniform(disparities.min(), disparities.max())) for _ in range(2))
    if rng.random() < 0.5:
        d1 = d0
    if front is not None:  # the hiding layer stays in focus (within a fraction of a px)
        d0 = d1 = float(disparities[front])
    span = max(float(np.abs(disparities - d).max()) for d in (d0, d1))
    k_px = float(rng.uniform(2.0, max_coc_px)) / max(span, 1e-6)
    aif, cocs, classical, truth = [], [], [], []
    for t in range(frames):
        d_focus = d0 + (d1 - d0) * (t / max(frames - 1, 1))
        offsets = velocity * t
        layer_coc = torch.from_numpy((k_px * (d_focus - disparities)).astype(np.float32))
        truth.append(trace(layers, layer_coc, margin, samples, offsets).permute(1, 2, 0).numpy())
        image, depth = pinhole(layers, torch.from_numpy(depths), margin, offsets)
        depth = depth.numpy()[None]
        if perturb:
            depth = perturb_depth(depth, rng)
        coc = (k_px * (d_focus - 1.0 / depth[0])).astype(np.float32)
        rgb = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        aif.append(rgb)
        cocs.append(coc)
        classical.append(render_coc(rgb, coc, aperture=aperture))
    return Clip(*(np.stack(a).astype(np.float32) for a in (aif, cocs, classical, truth)))
