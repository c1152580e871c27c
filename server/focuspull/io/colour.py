"""Colour through OpenColorIO (via OpenImageIO's ``ColorConfig``): input, working, output
and display spaces by name.

Rendering happens in a scene-linear *working space* (default: the config's
``scene_linear`` role; ACEScg in the built-in ACES studio config).  Display-referred and
log inputs are linearised into it on read and re-encoded on write; EXR output stays in
the working space and says so (``chromaticities``, ``colorInteropID``).  Previews and
contact sheets go through a display + view (default: the config's default display and
view, the ACES 2.0 SDR tone map in the built-in config), so HDR highlights roll off
instead of clipping.

The config: an explicit path or ``ocio://`` URI, else ``$OCIO``, else OpenImageIO's
built-in ``ocio://studio-config-latest`` (ACEScg, ACEScct, ARRI LogC3/LogC4, S-Log3,
V-Log, RED Log3G10, sRGB, Rec.709, ...).

Colour spaces are named as the config names them (``ACEScct``, ``ARRI LogC3 (EI800)``),
by any alias or role the config defines (``lin_ap1``, ``scene_linear``,
``compositing_log``), or by one of the short names in :data:`SHORT_NAMES`
(``srgb``, ``rec709``, ``logc3``, ``acescct``, ...).  ``linear`` means "already in the
working space": nothing is converted.  See docs/colour.md.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import OpenImageIO as oiio

from focuspull.errors import InputError
from focuspull.io.transfer import LINEAR, SHORT_NAMES

#: The config used when neither ``--config`` nor ``$OCIO`` names one.
DEFAULT_CONFIG = "ocio://studio-config-latest"


def config_name(explicit: str | None = None) -> str:
    """``explicit``, else ``$OCIO``, else :data:`DEFAULT_CONFIG`."""
    return explicit or os.environ.get("OCIO") or DEFAULT_CONFIG


@lru_cache(maxsize=8)
def _config(name: str):
    if not name.startswith("ocio://") and not os.path.isfile(name):
        raise InputError(f"OCIO config {name} does not exist",
                         "pass --config with a path to a config.ocio (or unset $OCIO for the built-in ACES config)")
    config = oiio.ColorConfig(name)
    error = config.geterror() if hasattr(config, "geterror") else ""
    if error or config.getNumColorSpaces() == 0:
        raise InputError(f"cannot load the OCIO config {name}: {error or 'it has no colour spaces'}",
                         "check the config file (ociocheck), or pass another --config")
    return config


@dataclass(frozen=True)
class Colour:
    """The colour setup of a render: config, working space, display and view.

    ``working``, ``display`` and ``view`` are resolved names of the config.
    """

    config: str
    working: str
    display: str
    view: str

    @property
    def ocio(self):
        return _config(self.config)

    # --- names ------------------------------------------------------------------
    def resolve(self, name: str | None) -> str | None:
        """The config's own name of colour space ``name``; None for ``linear`` (the working
        space, nothing to convert) or for the working space itself."""
        if name is None:
            return None
        space = resolve_space(self.config, name)
        if space is None or space == self.working:
            return None
        return space

    def is_linear(self, name: str | None) -> bool:
        space = self.resolve(name)
        return space is None or bool(self.ocio.isColorSpaceLinear(space))

    def chromaticities(self, name: str | None = None):
        """The 8 CIE xy numbers (R, G, B, white) of a space (default: the working space), or None."""
        space = self.resolve(name) or self.working
        value = self.ocio.get_chromaticities(space)
        return tuple(float(v) for v in value) if value is not None else None

    def interop_id(self, name: str | None = None) -> str:
        """The colour interop ID (``lin_ap1_scene``) of a space, else its config name."""
        space = self.resolve(name) or self.working
        return self.ocio.get_color_interop_id(space) or space

    # --- pixels -----------------------------------------------------------------
    def to_working(self, rgb, name: str | None) -> np.ndarray:
        """Colour in space ``name`` -> the working space.  ``... x 3`` (or ``x 1``, grey) float32."""
        return self._convert(rgb, self.resolve(name), self.working)

    def from_working(self, rgb, name: str | None) -> np.ndarray:
        """The working space -> colour encoded in space ``name`` (not clipped)."""
        return self._convert(rgb, self.working, self.resolve(name))

    def _convert(self, rgb, source: str | None, target: str | None) -> np.ndarray:
        arr = np.asarray(rgb, dtype=np.float32)
        if source is None or target is None or source == target:
            return arr.copy()
        return _apply(arr, lambda buf: oiio.ImageBufAlgo.colorconvert(
            buf, source, target, False, colorconfig=self.config))

    def to_display(self, rgb) -> np.ndarray:
        """Working-space light -> display code values 0..1 through the display and view
        (tone-mapped by the view, then clipped only to the display's range)."""
        arr = np.asarray(rgb, dtype=np.float32)
        out = _apply(arr, lambda buf: oiio.ImageBufAlgo.ociodisplay(
            buf, self.display, self.view, self.working, "", False, colorconfig=self.config))
        return np.clip(out, 0.0, 1.0)


def _apply(arr: np.ndarray, op) -> np.ndarray:
    """Run an OIIO colour op over ``... x 3`` (or ``x 1``: grey spread to RGB and back)."""
    shape = arr.shape
    # A last axis of 3 is RGB; anything else (scalars, 1-D ramps, x 1) is grey values.
    grey = arr.ndim == 0 or shape[-1] != 3
    flat = arr.reshape(-1, 1) if grey else arr.reshape(-1, 3)
    if grey:
        flat = np.repeat(flat, 3, axis=1)
    if flat.shape[0] == 0:
        return arr.copy()
    buf = oiio.ImageBuf(np.ascontiguousarray(flat.reshape(1, -1, 3)))
    out = op(buf)
    if out.has_error:
        raise InputError(f"colour conversion failed: {out.geterror()}",
                         "check the colour space names against the OCIO config (docs/colour.md)")
    pixels = np.asarray(out.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(-1, 3)
    if grey:
        pixels = pixels.mean(axis=1, keepdims=True)
    return pixels.reshape(shape)


def _all_names(config) -> dict[str, str]:
    """lower-cased name/alias/role -> config name."""
    names: dict[str, str] = {}
    for space in config.getColorSpaceNames():
        names.setdefault(space.lower(), space)
        for alias in config.getAliases(space):
            names.setdefault(alias.lower(), space)
    for role in config.getRoles():
        space = config.getColorSpaceNameByRole(role)
        if space:
            names.setdefault(role.lower(), space)
    return names


@lru_cache(maxsize=256)
def resolve_space(config_path: str, name: str) -> str | None:
    """The config's name of colour space ``name`` (name, alias, role or short name,
    case-insensitive); None for ``linear``.  Raises :class:`InputError` naming the spaces
    that are there."""
    text = str(name).strip()
    if text.lower() in LINEAR:
        return None
    config = _config(config_path)
    names = _all_names(config)
    for candidate in (text, SHORT_NAMES.get(text.lower(), "")):
        if candidate and candidate.lower() in names:
            return names[candidate.lower()]
    spaces = list(config.getColorSpaceNames())
    close = difflib.get_close_matches(text.lower(), list(names), n=4, cutoff=0.5)
    listed = ", ".join(dict.fromkeys(names[c] for c in close)) or ", ".join(spaces[:8])
    raise InputError(f"unknown colour space {name!r} in the OCIO config {config_path}",
                     f"use a colour space of the config ({listed}, ...), one of "
                     f"{', '.join(sorted(SHORT_NAMES))}, or 'linear'")


@lru_cache(maxsize=32)
def colour_setup(config: str | None = None, working: str | None = None, display: str | None = None,
                 view: str | None = None) -> Colour:
    """Resolve a :class:`Colour` (defaults: ``$OCIO`` / built-in config, its ``scene_linear``
    role, its default display and that display's default view)."""
    path = config_name(config)
    ocio = _config(path)
    working_space = resolve_space(path, working) if working else None
    if working_space is None:
        working_space = ocio.getColorSpaceNameByRole("scene_linear") or "ACEScg"
        working_space = resolve_space(path, working_space)
    if not ocio.isColorSpaceLinear(working_space):
        raise InputError(f"the working space {working_space!r} is not scene-linear",
                         "pick a linear space (e.g. ACEScg, lin_rec709): bokeh is computed on light")
    displays = list(ocio.getDisplayNames())
    chosen_display = display or ocio.getDefaultDisplayName()
    if chosen_display not in displays:
        raise InputError(f"unknown display {display!r} in the OCIO config {path}",
                         f"use one of: {', '.join(displays)}")
    views = list(ocio.getViewNames(chosen_display))
    chosen_view = view or ocio.getDefaultViewName(chosen_display)
    if chosen_view not in views:
        raise InputError(f"unknown view {view!r} for display {chosen_display!r}",
                         f"use one of: {', '.join(views)}")
    return Colour(path, working_space, chosen_display, chosen_view)


def space_from_header(metadata: dict | None, colour: Colour) -> str | None:
    """The colour space an EXR header states (``colorInteropID``, else ``chromaticities``
    matched against the config's linear spaces); ``"linear"`` when that is the working
    space; None when the header says nothing (or names a space the config lacks)."""
    from focuspull.io.metadata import attribute  # noqa: PLC0415

    interop = attribute(metadata, "colorInteropID")
    if interop:
        try:
            space = resolve_space(colour.config, str(interop))
        except InputError:
            space = None
        if space is not None:
            return "linear" if space == colour.working else space
    chromaticities = attribute(metadata, "chromaticities")
    if chromaticities is None or len(chromaticities) != 8:
        return None
    wanted = np.asarray(chromaticities, np.float64)
    ocio = colour.ocio
    candidates = [colour.working] + [s for s in ocio.getColorSpaceNames() if s != colour.working]
    for space in candidates:
        if not ocio.isColorSpaceLinear(space):
            continue
        value = ocio.get_chromaticities(space)
        if value is not None and np.allclose(np.asarray(value, np.float64), wanted, atol=2e-3):
            return "linear" if space == colour.working else space
    return None


def to_linear(arr, name: str, colour: Colour | None = None) -> np.ndarray:
    """Colour encoded in space ``name`` -> scene-linear working space (float32, not clipped)."""
    return (colour or colour_setup()).to_working(arr, name)


def from_linear(arr, name: str, colour: Colour | None = None) -> np.ndarray:
    """Scene-linear working space -> colour encoded in space ``name`` (float32, not clipped)."""
    return (colour or colour_setup()).from_working(arr, name)


def check_space(name: str, config: str | None = None) -> str:
    """``name`` if the config knows it (or it is ``linear``), else :class:`InputError`."""
    resolve_space(config_name(config), name)
    return name


__all__ = ["Colour", "DEFAULT_CONFIG", "colour_setup", "space_from_header", "config_name", "resolve_space", "to_linear",
           "from_linear", "check_space"]
