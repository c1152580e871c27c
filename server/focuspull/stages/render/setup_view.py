"""The "focal plane setup" view: where is the focus, and how far is everything from it?

Like Nuke ZDefocus's *focal plane setup* output: the image's luminance, tinted

* **red** in front of the focal plane (``coc_px < -in_focus_px``),
* **green** inside the in-focus band (``|coc_px| <= in_focus_px``),
* **blue** behind it (``coc_px > in_focus_px``),

with the red/blue tint growing with ``|coc_px|`` (from ``MIN_TINT`` at the edge of the
band to full at ``full_tint_px``), so the artist reads distances from the focal plane
off the saturation.  The scale is fixed in pixels, not relative to the frame, so the
view does not pump over a clip.  Pure numpy, scene-linear in and out.
"""
from __future__ import annotations

import numpy as np

from focuspull.errors import InputError
from focuspull.io.transfer import LUMA_WEIGHTS

FRONT_RGB = np.array([1.0, 0.0, 0.0], np.float32)
IN_FOCUS_RGB = np.array([0.0, 1.0, 0.0], np.float32)
BEHIND_RGB = np.array([0.0, 0.0, 1.0], np.float32)
#: Tint just outside the in-focus band: weak, but never mistaken for untinted.
MIN_TINT = 0.25
#: Tint of the in-focus band (strong: that is what the artist is looking for).
IN_FOCUS_TINT = 0.8


def focal_plane_setup(image: np.ndarray, coc_px: np.ndarray, in_focus_px: float = 0.5, *,
                      full_tint_px: float = 16.0) -> np.ndarray:
    """Tinted luminance view of the focal plane.

    Args:
        image: ``H x W x C`` scene-linear (C = 1, 3 or 4; alpha is ignored).
        coc_px: ``H x W`` signed CoC radius in pixels (positive behind the focal plane).
        in_focus_px: ``|coc_px|`` up to this counts as in focus (green).
        full_tint_px: ``|coc_px|`` beyond the band at which red/blue reach full strength.
    Returns:
        ``H x W x 3`` float32: ``Y * ((1 - s) * white + s * colour)``; pixels with a
        non-finite CoC are left as untinted luminance.
    """
    image = np.asarray(image, dtype=np.float32)
    coc_px = np.asarray(coc_px, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"image must be H x W x C with C = 1, 3 or 4, got shape {image.shape}",
                         "pass the plate as RGB or RGBA")
    if coc_px.shape != image.shape[:2]:
        raise InputError(f"CoC is {coc_px.shape} but the image is {image.shape[:2]}",
                         "compute the CoC from depth at the plate's resolution")
    if not (np.isfinite(in_focus_px) and in_focus_px >= 0):
        raise InputError(f"in_focus_px must be >= 0, got {in_focus_px}", "use e.g. 0.5")
    if not (np.isfinite(full_tint_px) and full_tint_px > 0):
        raise InputError(f"full_tint_px must be > 0, got {full_tint_px}", "use e.g. 16")

    luma = image[..., 0] if image.shape[2] == 1 else image[..., :3] @ LUMA_WEIGHTS
    luma = np.maximum(np.nan_to_num(luma, nan=0.0), 0.0)

    finite = np.isfinite(coc_px)
    coc = np.where(finite, coc_px, 0.0)
    distance = np.clip((np.abs(coc) - in_focus_px) / full_tint_px, 0.0, 1.0)
    out_of_focus_tint = MIN_TINT + (1.0 - MIN_TINT) * distance
    front = coc < -in_focus_px
    behind = coc > in_focus_px
    strength = np.where(front | behind, out_of_focus_tint, IN_FOCUS_TINT)
    strength = np.where(finite, strength, 0.0).astype(np.float32)[..., None]
    colour = np.where(front[..., None], FRONT_RGB,
                      np.where(behind[..., None], BEHIND_RGB, IN_FOCUS_RGB))
    tint = (1.0 - strength) + strength * colour  # white blended toward the colour
    return (luma[..., None] * tint).astype(np.float32)
