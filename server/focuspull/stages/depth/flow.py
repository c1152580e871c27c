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


def dis_flow(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """DIS optical flow ``a -> b`` of two ``H x W`` uint8 images (see :func:`flow_image`).

    Returns ``H x W x 2`` float32 (see the module convention).  The ``MEDIUM`` preset,
    with a pyramid deep enough for motions of a few dozen pixels between neighbours.
    """
    if image_a.shape != image_b.shape or image_a.ndim != 2 or image_a.dtype != np.uint8:
        raise InputError(f"flow needs two H x W uint8 images of one size, got {image_a.shape} "
                         f"{image_a.dtype} and {image_b.shape} {image_b.dtype}", "use flow_image() on both")
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(np.ascontiguousarray(image_a), np.ascontiguousarray(image_b), None)
    return np.asarray(flow, dtype=np.float32)


def _sample_positions(flow_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow_ab.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs + flow_ab[..., 0], ys + flow_ab[..., 1]


def warp_to(values_b: np.ndarray, flow_ab: np.ndarray, *, nearest: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``b``'s ``H x W`` (or ``H x W x C``) values seen from frame ``a``.

    Bilinear.  Returns ``(warped, inside)``: ``inside`` is False where the flow leaves
    the frame (there ``warped`` holds the nearest edge value and must not be used).
    """
    cv2 = _cv2()
    map_x, map_y = _sample_positions(flow_ab)
    height, width = flow_ab.shape[:2]
    warped = cv2.remap(np.ascontiguousarray(values_b, dtype=np.float32), map_x, map_y,
                       interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warped, inside


def consistent(flow_ab: np.ndarray, flow_ba: np.ndarray, *, alpha: float = FB_ALPHA,
               beta: float = FB_BETA) -> np.ndarray:
    """``H x W`` bool: where ``a -> b -> a`` comes back to its start (not occluded in
    ``b``, not leaving the frame, tracked well).  See :data:`FB_ALPHA`."""
    back, inside = warp_to(flow_ba, flow_ab)
    total = flow_ab + back
    error = (total * total).sum(axis=2)
    bound = alpha * ((flow_ab * flow_ab).sum(axis=2) + (back * back).sum(axis=2)) + beta
    return inside & (error <= bound)
