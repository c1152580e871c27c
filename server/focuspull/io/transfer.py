"""Names of colour encodings, pure Python (host Pythons build jobs without OpenImageIO).

The conversions themselves go through OpenColorIO (:mod:`focuspull.io.colour`); the
hand-written curves this module used to hold are gone.  Here are only the short names
the command line has always taken, the colour space of the built-in ACES studio config
each stands for, and the rule for what a file holds when nobody says.

=========== ===================================== ==========================================
short name  colour space (built-in studio config) what it is
=========== ===================================== ==========================================
linear      (none)                                already scene-linear in the working space
srgb        sRGB Encoded Rec.709 (sRGB)           IEC 61966-2-1 piecewise curve, Rec.709
rec709      Camera Rec.709                        ITU-R BT.709 camera OETF, Rec.709
gamma2.2    Gamma 2.2 Encoded Rec.709             pure power 2.2
gamma2.4    Gamma 2.4 Encoded Rec.709             pure power 2.4 (BT.1886 with black at 0)
acescct     ACEScct                               ACES log for grading, AP1
acescc      ACEScc                                pure-log ACES, AP1
acescg      ACEScg                                scene-linear AP1
logc3       ARRI LogC3 (EI800)                    ALEXA LogC v3, ARRI Wide Gamut 3
logc4       ARRI LogC4                            ALEXA 35 LogC4, ARRI Wide Gamut 4
slog3       S-Log3 S-Gamut3                       Sony
vlog        V-Log V-Gamut                         Panasonic
log3g10     Log3G10 REDWideGamutRGB               RED
=========== ===================================== ==========================================

Any other name is looked up in the OCIO config (names, aliases, roles).
"""
from __future__ import annotations

import os

import numpy as np

#: Rec.709 / sRGB primaries: luminance Y of scene-linear RGB.
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)

#: Spellings of "already scene-linear in the working space".
LINEAR = frozenset({"linear", "scene-linear", "scene_linear_as_is"})

SHORT_NAMES = {
    "srgb": "sRGB Encoded Rec.709 (sRGB)",
    "rec709": "Camera Rec.709",
    "gamma2.2": "Gamma 2.2 Encoded Rec.709",
    "gamma2.4": "Gamma 2.4 Encoded Rec.709",
    "acescct": "ACEScct",
    "acescc": "ACEScc",
    "acescg": "ACEScg",
    "logc3": "ARRI LogC3 (EI800)",
    "logc4": "ARRI LogC4",
    "slog3": "S-Log3 S-Gamut3",
    "vlog": "V-Log V-Gamut",
    "log3g10": "Log3G10 REDWideGamutRGB",
}
TRANSFER_NAMES = ("linear", *SHORT_NAMES)

# Extensions whose files hold scene-linear floats by convention.
LINEAR_EXTENSIONS = frozenset({".exr", ".sxr", ".mxr", ".hdr", ".rgbe", ".pfm"})
# Display-referred formats: decoded as sRGB unless the user names another space.
# DPX/Cineon scans are often log: name the space (--input-space logc3, ACEScct, ...).
DISPLAY_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jif", ".jfif", ".tif", ".tiff",
                                ".dpx", ".cin", ".tga", ".bmp", ".webp", ".ppm", ".pgm"})


def check_transfer(name) -> str:
    """A colour space name, short names lower-cased; the OCIO config checks the rest
    (:func:`focuspull.io.colour.resolve_space`).  Empty names raise :class:`InputError`."""
    from focuspull.errors import InputError

    text = str(name).strip() if name is not None else ""
    if not text:
        raise InputError("empty colour space name",
                         f"use one of: {', '.join(TRANSFER_NAMES)}, or a colour space of the OCIO config")
    return text.lower() if text.lower() in SHORT_NAMES or text.lower() in LINEAR else text


def default_transfer_for(path: str, pixel_format: str | None = None) -> str:
    """The encoding a file is assumed to use when the user names none.

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


def is_linear_name(name) -> bool:
    return name is None or str(name).strip().lower() in LINEAR


def __getattr__(name: str):
    # to_linear / from_linear moved to the OCIO-backed module; load it only when asked.
    if name in ("to_linear", "from_linear"):
        from focuspull.io import colour

        return getattr(colour, name)
    raise AttributeError(f"module 'focuspull.io.transfer' has no attribute {name!r}")


__all__ = ["TRANSFER_NAMES", "SHORT_NAMES", "LINEAR", "LUMA_WEIGHTS", "default_transfer_for", "check_transfer",
           "is_linear_name", "LINEAR_EXTENSIONS", "DISPLAY_EXTENSIONS"]
