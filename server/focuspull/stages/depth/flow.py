"""Dense optical flow between two frames and what it takes to warp depth with it.

OpenCV's DIS flow (Kroeger et al. 2016, CPU, deterministic) on a tone-mapped luminance
image, a bilinear warp, and the forward-backward consistency test that marks pixels
occluded (or badly tracked) in the other frame.  Torch is not used; ``cv2`` is imported
on first use (``opencv-python-headless``, in the ``renderer`` extra).

Convention
----------
* ``flow_ab`` is ``H x W x 2`` float32 ``(dx, dy)`` in pixels: the content at pixel
  ``(x, y)`` of frame ``a`` is at ``(x + dx, y + dy)`` in frame ``b``.
* Pixel centres are at integer coordinates, ``x`` right, ``y`` down.
* ``warp_to(values_b, flow_ab)`` samples frame ``b``'s values at those positions: the
  result is frame ``b`` seen from frame ``a``.
"""
from __future__ import annotations

import numpy as np

from focuspull.errors import InputError

#: Forward-backward test (Sundaram, Brox & Keutzer 2010): a pixel is consistent when
#: ``|f_ab + f_ba(x + f_ab)|^2 <= ALPHA * (|f_ab|^2 + |f_ba(x + f_ab)|^2) + BETA``.
FB_ALPHA = 0.01
FB_BETA = 0.5


def _cv2():
    try:
        import cv2  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("motion-compensated depth stabilisation needs OpenCV",
                         "pip install 'focuspull[renderer]' (opencv-python-headless)") from None
    return cv2


def flow_image(rgb: np.ndarray) -> np.ndarray:
    """``H x W x C`` scene-linear (or ``H x W``) -> ``H x W`` uint8 for flow.

    Rec.709 luminance, compressed with ``y / (1 + y)`` then a cube root so highlights and
    shadows both keep texture.  A fixed curve, no per-frame normalisation: the same pixel
    value gives the same code in every frame, so brightness constancy holds.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 3:
        if rgb.shape[2] >= 3:
            luma = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
        else:
            luma = rgb[..., 0]
    elif rgb.ndim == 2:
        luma = rgb
    else:
        raise InputError(f"flow needs an H x W x C image, got shape {rgb.shape}", "pass the colour frame")
    luma = np.nan_to_num(np.maximum(luma, 0.0), nan=0.0, posinf=1e6)
    tone = np.cbrt(luma / (1.0 + luma))
    return np.clip(np.rint(tone * 255.0), 0, 255).astype(np.uint8)


#: Frames wider than this are downscaled (area) for the flow, which is then upscaled:
#: DIS works on 8 px patches anyway, and 1080p flow at full size costs ~4x as much.
MAX_FLOW_WIDTH = 960


def dis_flow(image_a: np.ndarray, image_b: np.ndarray, *, max_width: int = MAX_FLOW_WIDTH) -> np.ndarray:
    """DIS optical flow ``a -> b`` of two ``H x W`` uint8 images (see :func:`flow_image`).

    Returns ``H x W x 2`` float32 (see the module convention).  The ``MEDIUM`` preset,
    whose pyramid follows motions of a few dozen pixels between neighbours; computed at
    most ``max_width`` px wide and scaled back to the frame.
    """
    if image_a.shape != image_b.shape or image_a.ndim != 2 or image_a.dtype != np.uint8:
        raise InputError(f"flow needs two H x W uint8 images of one size, got {image_a.shape} "
                         f"{image_a.dtype} and {image_b.shape} {image_b.dtype}", "use flow_image() on both")
    cv2 = _cv2()
    height, width = image_a.shape
    factor = 1
    while width / factor > max_width:
        factor *= 2
    a, b = np.ascontiguousarray(image_a), np.ascontiguousarray(image_b)
    if factor > 1:
        size = (max(8, round(width / factor)), max(8, round(height / factor)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = np.asarray(dis.calc(a, b, None), dtype=np.float32)
    if factor > 1:
        scale = np.float32([width / flow.shape[1], height / flow.shape[0]])
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale
    return np.ascontiguousarray(flow, dtype=np.float32)


_GRIDS: dict = {}


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    key = (height, width)
    if key not in _GRIDS:
        if len(_GRIDS) > 4:
            _GRIDS.clear()
        xs = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :], (height, width))
        ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
        _GRIDS[key] = (xs, ys)
    return _GRIDS[key]


def sample_maps(flow_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(map_x, map_y, inside)``: where each pixel of ``a`` lands in ``b``, and whether
    that is inside the frame.  Reuse them for several :func:`remap` calls."""
    height, width = flow_ab.shape[:2]
    xs, ys = _grid(height, width)
    map_x = xs + flow_ab[..., 0]
    map_y = ys + flow_ab[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return map_x, map_y, inside


def remap(values_b: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """``values_b`` sampled at ``(map_x, map_y)`` (edge values replicated outside)."""
    cv2 = _cv2()
    return cv2.remap(np.ascontiguousarray(values_b, dtype=np.float32), map_x, map_y,
                     interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def warp_to(values_b: np.ndarray, flow_ab: np.ndarray, *, nearest: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``b``'s ``H x W`` (or ``H x W x C``) values seen from frame ``a``.

    Bilinear (or ``nearest``).  Returns ``(warped, inside)``: ``inside`` is False where the
    flow leaves the frame (there ``warped`` holds the nearest edge value: do not use it).
    """
    map_x, map_y, inside = sample_maps(flow_ab)
    return remap(values_b, map_x, map_y, nearest=nearest), inside


def consistent(flow_ab: np.ndarray, flow_ba: np.ndarray, *, alpha: float = FB_ALPHA,
               beta: float = FB_BETA, maps=None) -> np.ndarray:
    """``H x W`` bool: where ``a -> b -> a`` comes back to its start (not occluded in
    ``b``, not leaving the frame, tracked well).  See :data:`FB_ALPHA`.  ``maps``: the
    :func:`sample_maps` of ``flow_ab`` when already computed."""
    map_x, map_y, inside = maps if maps is not None else sample_maps(flow_ab)
    back = remap(flow_ba, map_x, map_y)
    total = flow_ab + back
    error = (total * total).sum(axis=2)
    bound = alpha * ((flow_ab * flow_ab).sum(axis=2) + (back * back).sum(axis=2)) + beta
    return inside & (error <= bound)
