"""Aperture kernels: the shape of a bokeh ball at a given CoC radius.

Pure numpy.  A kernel for radius ``r`` is a ``(2R+1) x (2R+1)`` float32 array,
``R = ceil(r)``, that sums to 1.  Coverage of each pixel by the aperture shape is
integrated with a supersampled grid, so edges are anti-aliased and sub-pixel radii
keep the right energy distribution; a radius below half a pixel is a delta.

The aperture radius is the *circumradius*: a polygon with ``n`` blades is inscribed
in the thin-lens disc, as blades close down a round opening (Cycles does the same).

Anamorphic and aspect: ``aspect`` is the bokeh's width / height as seen after desqueeze
(ZDefocus ``aspect``), ``pixel_aspect`` the plate's (2.0 for a 2x anamorphic plate).  In
stored pixels the shape is stretched horizontally by ``aspect / pixel_aspect``, so with
``aspect = 1`` a 2x squeezed plate gets a kernel half as wide as tall: round once the
plate is desqueezed.  The CoC radius is the longer semi-axis of that ellipse (vertical
when the stretch is below 1), so the kernel never outgrows ``2R+1``.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from focuspull.errors import InputError

_SUPERSAMPLE = 8  # per pixel axis for large kernels; small ones get more (see _samples)


def _samples(radius: float) -> int:
    """Sub-samples per pixel axis: enough that small discs keep their area within ~1 %."""
    return max(_SUPERSAMPLE, min(32, int(math.ceil(64.0 / max(radius, 1.0)))))


@dataclass(frozen=True)
class Aperture:
    """Aperture shape.

    Attributes:
        blades: 0 for a round disc, else the number of straight blades (>= 3).
        rotation_deg: rotation of the polygon, counter-clockwise in the image.
        roundness: 0 = straight blades, 1 = a circle; in between, curved blades.
        image: optional custom kernel (H x W, >= 0); resampled to the radius.  Its
            bounding square is mapped onto the disc of the CoC radius.
    """

    blades: int = 0
    rotation_deg: float = 0.0
    roundness: float = 0.0
    image: np.ndarray | None = field(default=None, compare=False, hash=False)
    aspect: float = 1.0
    pixel_aspect: float = 1.0

    def __post_init__(self) -> None:
        blades = self.blades
        if isinstance(blades, numbers.Real) and not isinstance(blades, bool) \
                and math.isfinite(blades) and float(blades).is_integer():
            object.__setattr__(self, "blades", int(blades))  # 6.0 and numpy ints are fine
        if self.blades != 0 and (not isinstance(self.blades, int) or self.blades < 3):
            raise InputError(f"blades must be 0 (round) or a whole number >= 3, got {blades!r}",
                             "pass --blades 0 for a disc or e.g. --blades 6")
        if not (isinstance(self.rotation_deg, numbers.Real) and math.isfinite(self.rotation_deg)):
            raise InputError(f"rotation must be a finite number of degrees, got {self.rotation_deg!r}",
                             "pass e.g. --rotation 15")
        for name in ("aspect", "pixel_aspect"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                    math.isfinite(value) and 0.01 <= value <= 100.0):
                raise InputError(f"{name.replace('_', ' ')} must be a number in 0.01..100, got {value!r}",
                                 "pass e.g. --aspect 1 (round after desqueeze) or 0.5 (a tall oval)")
        if not 0.0 <= self.roundness <= 1.0:
            raise InputError(f"roundness must be in 0..1, got {self.roundness}",
                             "pass e.g. --roundness 0.3")
        if self.image is not None:
            img = np.asarray(self.image, dtype=np.float64)
            if img.ndim == 3:
                img = img.mean(axis=2)
            if img.ndim != 2 or img.size == 0 or not np.isfinite(img).all() or (img < 0).any() \
                    or img.sum() <= 0:
                raise InputError("custom aperture image must be a non-empty 2D image of finite "
                                 "values >= 0 with some light in it",
                                 "pass a greyscale bokeh shape, bright on black")
            img = np.ascontiguousarray(img)
            img.setflags(write=False)
            object.__setattr__(self, "image", img)
            digest = hashlib.sha1(img.tobytes()).hexdigest()
            _CUSTOM_IMAGES[digest] = img
            object.__setattr__(self, "_digest", digest)

    @property
    def key(self) -> tuple:
        """Hashable identity: the custom image by a digest of its content, taken once."""
        img_key = None if self.image is None else self._digest
        return (self.blades, float(self.rotation_deg), float(self.roundness), img_key, self.stretch)

    @property
    def stretch(self) -> float:
        """Horizontal / vertical size of the shape in stored pixels."""
        return float(self.aspect) / float(self.pixel_aspect)

    def axes(self) -> tuple[float, float]:
        """``(sx, sy)``: the semi-axes of the shape as fractions of the CoC radius (<= 1)."""
        stretch = self.stretch
        return (stretch, 1.0) if stretch <= 1.0 else (1.0, 1.0 / stretch)


# Custom kernel images by content digest: the kernel cache keys on the digest, so it keeps
# no copy of the image per radius.
_CUSTOM_IMAGES: dict[str, np.ndarray] = {}


DISC = Aperture()


def _support(radius_px: float) -> int:
    return int(math.ceil(max(radius_px, 0.0) - 1e-6))


def _inside(aperture: Aperture, x: np.ndarray, y: np.ndarray, radius: float,
            axes: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Boolean mask of sample points (x right, y down, in px from the centre) inside the shape,
    squeezed to the semi-axes ``axes`` (fractions of ``radius``)."""
    x = x / axes[0]
    y = y / axes[1]
    rho = np.hypot(x, y)
    if aperture.blades == 0:
        return rho <= radius
    n = aperture.blades
    # Image y points down; negate it so rotation is counter-clockwise as seen on screen.
    theta = np.arctan2(-y, x) - math.radians(aperture.rotation_deg)
    sector = 2.0 * math.pi / n
    # Distance from the centre to the polygon edge along theta (vertex at theta = 0).
    local = np.mod(theta, sector) - sector / 2.0
    edge = radius * math.cos(math.pi / n) / np.cos(local)
    edge = (1.0 - aperture.roundness) * edge + aperture.roundness * radius
    return rho <= edge


@lru_cache(maxsize=512)
def _kernel_cached(key: tuple, radius_q: float) -> np.ndarray:
    blades, rotation_deg, roundness, img_key, stretch = key
    axes = (stretch, 1.0) if stretch <= 1.0 else (1.0, 1.0 / stretch)
    if img_key is not None:
        return _read_only(_image_kernel(_CUSTOM_IMAGES[img_key], radius_q, axes))
    aperture = Aperture(blades=blades, rotation_deg=rotation_deg, roundness=roundness)
    big_r = _support(radius_q)
    if radius_q <= 0.5:
        return _read_only(np.ones((1, 1), np.float32))
    s = _samples(radius_q)
    offsets = (np.arange(s) + 0.5) / s - 0.5
    grid = np.arange(-big_r, big_r + 1, dtype=np.float64)
    # Sample positions: pixel centre + sub-pixel offsets, shape (2R+1)*s per axis.
    coords = (grid[:, None] + offsets[None, :]).reshape(-1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    inside = _inside(aperture, xx, yy, radius_q, axes).astype(np.float64)
    n = 2 * big_r + 1
    cover = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    return _read_only((cover / cover.sum()).astype(np.float32))


def _read_only(kernel: np.ndarray) -> np.ndarray:
    """Cached kernels are shared by every caller: nobody may scale one in place."""
    kernel.setflags(write=False)
    return kernel


def _image_kernel(image: np.ndarray, radius: float, axes: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    big_r = _support(radius)
    if radius <= 0.5:
        return np.ones((1, 1), np.float32)
    h, w = image.shape
    n = 2 * big_r + 1
    s = _samples(radius)
    coords = (np.arange(n * s) + 0.5) / s - n / 2.0  # px from the kernel centre
    # Map [-radius, radius] onto the image's [0, size); outside is dark.
    uy = coords / (2.0 * radius * axes[1]) + 0.5
    ux = coords / (2.0 * radius * axes[0]) + 0.5
    yy, xx = np.meshgrid(uy * h, ux * w, indexing="ij")
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    yi = np.clip(yy.astype(int), 0, h - 1)
    xi = np.clip(xx.astype(int), 0, w - 1)
    samples = np.where(valid, image[yi, xi], 0.0)
    cover = samples.reshape(n, s, n, s).mean(axis=(1, 3))
    total = cover.sum()
    if total <= 0:
        return np.ones((1, 1), np.float32)
    return (cover / total).astype(np.float32)


def aperture_kernel(aperture: Aperture | None, radius_px: float) -> np.ndarray:
    """Normalised kernel of the aperture at CoC radius ``radius_px`` (the sign is ignored).

    Returns:
        ``(2R+1) x (2R+1)`` float32, ``R = ceil(|radius_px|)``, summing to 1; read-only
        (it is cached and shared: copy it to change it).
    """
    radius = abs(float(radius_px))
    if not math.isfinite(radius):
        raise InputError(f"kernel radius must be finite, got {radius_px}",
                         "clamp the CoC with --max-size")
    # Quantise to 1/64 px so the cache is effective without visible error.
    radius_q = round(radius * 64.0) / 64.0
    return _kernel_cached((aperture or DISC).key, radius_q)
