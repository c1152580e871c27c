"""Named transfer functions between scene-linear light and display-encoded values.

Nothing in focuspull is gamma-corrected silently: every conversion names its curve.

========== ===================================================================
name       curve (``V`` encoded, ``L`` linear, both 0..1 for display range)
========== ===================================================================
linear     identity
srgb       IEC 61966-2-1 piecewise: ``L = V/12.92`` below 0.04045, else
           ``((V+0.055)/1.055)**2.4``
rec709     ITU-R BT.709 camera OETF: ``V = 4.5 L`` below beta, else
           ``alpha L**0.45 - (alpha-1)``, alpha/beta to full precision (BT.2020) so
           both pieces meet and the curve is exactly invertible
gamma2.2   pure power ``L = V**2.2``
gamma2.4   pure power ``L = V**2.4`` (BT.1886 display with black at 0)
========== ===================================================================

Values outside 0..1 (scene-linear highlights, negative noise) are extended, not
clipped: the piecewise curves continue their power segment above 1 and their
linear segment below 0, pure powers mirror the sign.  Clipping happens only where
an integer file or video needs it (``images.write_image``, ``preview``).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from focuspull.errors import InputError

#: Rec.709 / sRGB primaries: luminance Y of scene-linear RGB.
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)

_REC709_ALPHA = 1.09929682680944
_REC709_BETA = 0.018053968510807


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4)


def _srgb_from_linear(l: np.ndarray) -> np.ndarray:
    return np.where(l <= 0.0031308, l * 12.92,
                    1.055 * np.maximum(l, 0.0031308) ** (1.0 / 2.4) - 0.055)


def _rec709_to_linear(v: np.ndarray) -> np.ndarray:
    knee = 4.5 * _REC709_BETA
    return np.where(v < knee, v / 4.5,
                    ((np.maximum(v, knee) + (_REC709_ALPHA - 1.0)) / _REC709_ALPHA) ** (1.0 / 0.45))


def _rec709_from_linear(l: np.ndarray) -> np.ndarray:
    return np.where(l < _REC709_BETA, 4.5 * l,
                    _REC709_ALPHA * np.maximum(l, _REC709_BETA) ** 0.45 - (_REC709_ALPHA - 1.0))


def _power(exponent: float) -> Callable[[np.ndarray], np.ndarray]:
    # Sign-mirrored so negative linear values (noise, overshoot) survive a round trip.
    return lambda x: np.sign(x) * np.abs(x) ** exponent


def _identity(x: np.ndarray) -> np.ndarray:
    return x


# name -> (to_linear, from_linear)
TRANSFERS: dict[str, tuple[Callable, Callable]] = {
    "linear": (_identity, _identity),
    "srgb": (_srgb_to_linear, _srgb_from_linear),
    "rec709": (_rec709_to_linear, _rec709_from_linear),
    "gamma2.2": (_power(2.2), _power(1.0 / 2.2)),
    "gamma2.4": (_power(2.4), _power(1.0 / 2.4)),
}
TRANSFER_NAMES = tuple(TRANSFERS)

# Extensions whose files hold scene-linear floats by convention.
LINEAR_EXTENSIONS = frozenset({".exr", ".sxr", ".mxr", ".hdr", ".rgbe", ".pfm"})
# Display-referred formats: decoded as sRGB unless the user names another curve.
# DPX/Cineon are often log in film pipelines; no log curve is offered yet, so pass
# the curve explicitly (or convert upstream) for log scans.
DISPLAY_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jif", ".jfif", ".tif", ".tiff",
                                ".dpx", ".cin", ".tga", ".bmp", ".webp", ".ppm", ".pgm"})


def check_transfer(name: str) -> str:
    """Normalise a transfer name (case-insensitive) or raise :class:`InputError`."""
    key = str(name).strip().lower() if name is not None else ""
    if key not in TRANSFERS:
        raise InputError(f"unknown transfer function {name!r}",
                         f"use one of: {', '.join(TRANSFER_NAMES)}")
    return key


def to_linear(arr, name: str) -> np.ndarray:
    """Decode display-encoded values to scene-linear light.  Any shape, float32 out."""
    decode, _ = TRANSFERS[check_transfer(name)]
    return np.asarray(decode(np.asarray(arr, dtype=np.float64)), dtype=np.float32)


def from_linear(arr, name: str) -> np.ndarray:
    """Encode scene-linear light for display.  Any shape, float32 out, not clipped."""
    _, encode = TRANSFERS[check_transfer(name)]
    return np.asarray(encode(np.asarray(arr, dtype=np.float64)), dtype=np.float32)


def default_transfer_for(path: str, pixel_format: str | None = None) -> str:
    """The curve a file is assumed to use when the user names none.

    EXR/HDR/PFM -> ``linear``.  PNG, JPEG, TIFF, DPX, ... -> ``srgb``, except that
    a float/half file of any kind (e.g. a 32-bit TIFF) is ``linear``: float image
    files are scene-linear by convention.  ``pixel_format`` is the OIIO format
    name when known (``"half"``, ``"float"``, ``"uint8"``, ...).
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in LINEAR_EXTENSIONS:
        return "linear"
    if pixel_format in ("half", "float", "double"):
        return "linear"
    return "srgb"


__all__ = ["TRANSFERS", "TRANSFER_NAMES", "to_linear", "from_linear", "default_transfer_for",
           "check_transfer", "LINEAR_EXTENSIONS", "DISPLAY_EXTENSIONS"]
