import math

import numpy as np
import pytest

from focuspull.stages.aperture import Aperture, aperture_kernel
from focuspull.errors import InputError


@pytest.mark.parametrize("radius", [0.0, 0.3, 0.75, 1.5, 2.6, 17.2, 128.0])
@pytest.mark.parametrize("aperture", [Aperture(), Aperture(blades=6, rotation_deg=12), Aperture(blades=5, roundness=0.5)])
def test_kernels_are_normalised_and_sized(radius, aperture):
    k = aperture_kernel(aperture, radius)
    big_r = max(0, math.ceil(radius - 1e-6))
    assert k.shape == (2 * big_r + 1,) * 2 or (radius <= 0.5 and k.shape == (1, 1))
    assert k.dtype == np.float32
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
    assert (k >= 0).all()


@pytest.mark.parametrize("radius", [1.3, 4.5, 20.0, 128.0])
def test_disc_area_matches_the_radius(radius):
    k = aperture_kernel(Aperture(), radius)
    # Uniform disc: every fully covered pixel has weight 1/(pi r^2).
    plateau = k[k.shape[0] // 2, k.shape[1] // 2]
    assert abs(1.0 / plateau - math.pi * radius**2) / (math.pi * radius**2) < 0.02


def test_sub_pixel_radius_spreads_less_than_one_pixel():
    k = aperture_kernel(Aperture(), 0.9)
    assert k.shape == (3, 3)
    assert k[1, 1] > k[0, 1] > k[0, 0] >= 0


def test_polygon_is_inscribed_in_the_disc():
    disc = aperture_kernel(Aperture(), 30.0) > 0
    hexagon = aperture_kernel(Aperture(blades=6), 30.0)
    assert ((hexagon > 0) <= disc).all()
    # Area of a regular hexagon of circumradius r is 3*sqrt(3)/2 r^2 = 1 / plateau weight.
    assert abs(1.0 / hexagon.max() / (1.5 * math.sqrt(3) * 900) - 1) < 0.01


def test_roundness_one_is_the_disc():
    a = aperture_kernel(Aperture(blades=6, roundness=1.0), 12.0)
    b = aperture_kernel(Aperture(), 12.0)
    assert np.abs(a - b).max() < 1e-6


def test_custom_image_kernel_keeps_its_shape():
    shape = np.zeros((32, 32), np.float32)
    shape[:, 16:] = 1.0  # right half only
    k = aperture_kernel(Aperture(image=shape), 10.0)
    assert abs(k.sum() - 1) < 1e-5
    assert k[:, :10].sum() < 1e-6 and k[:, 11:].sum() > 0.9  # column 10 straddles the centre


@pytest.mark.parametrize("kwargs", [dict(blades=2), dict(roundness=1.5), dict(image=np.zeros((4, 4)))])
def test_bad_apertures_are_refused_with_a_hint(kwargs):
    with pytest.raises(InputError) as err:
        Aperture(**kwargs)
    assert err.value.hint


def test_cached_kernels_are_read_only_and_stay_normalised():
    k = aperture_kernel(Aperture(), 3.0)
    with pytest.raises(ValueError):
        k *= 2
    assert abs(aperture_kernel(Aperture(), 3.0).sum() - 1) < 1e-5


def test_blade_counts_from_numpy_or_keyframes_and_bad_rotation():
    assert Aperture(blades=np.int64(6)).blades == 6 and Aperture(blades=6.0).blades == 6
    with pytest.raises(InputError, match="whole number"):
        Aperture(blades=6.5)
    with pytest.raises(InputError, match="rotation"):
        Aperture(blades=6, rotation_deg=float("nan"))


def test_custom_image_cache_keys_on_content_not_copies():
    img = np.random.default_rng(0).random((64, 64))
    a, b = Aperture(image=img), Aperture(image=img.copy())
    assert a.key == b.key and len(a.key[3]) == 40  # a sha1 digest, not the pixels
    assert np.array_equal(aperture_kernel(a, 9.0), aperture_kernel(b, 9.0))


# --- anamorphic: pixel aspect and the ZDefocus aspect control -------------------------------
def _extent(kernel):
    rows = np.nonzero(kernel.sum(axis=1) > 0)[0]
    cols = np.nonzero(kernel.sum(axis=0) > 0)[0]
    return cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1


@pytest.mark.parametrize("aspect, pixel_aspect, width, height", [
    (1.0, 1.0, 21, 21), (1.0, 2.0, 11, 21), (0.5, 1.0, 11, 21), (2.0, 1.0, 21, 11), (0.5, 2.0, 5, 21)])
def test_kernel_is_stretched_by_aspect_over_pixel_aspect(aspect, pixel_aspect, width, height):
    kernel = aperture_kernel(Aperture(aspect=aspect, pixel_aspect=pixel_aspect), 10.0)
    assert kernel.shape == (21, 21) and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    w, h = _extent(kernel)
    assert abs(w - width) <= 1 and abs(h - height) <= 1


def test_bladed_and_image_kernels_squeeze_too():
    plain = _extent(aperture_kernel(Aperture(blades=6), 12.0))
    squeezed = _extent(aperture_kernel(Aperture(blades=6, pixel_aspect=2.0), 12.0))
    assert squeezed[1] == plain[1] and abs(squeezed[0] - plain[0] / 2) <= 1.5
    square = np.ones((8, 8), np.float32)
    image = aperture_kernel(Aperture(image=square, pixel_aspect=2.0), 8.0)
    w, h = _extent(image)
    assert abs(w - 9) <= 1 and abs(h - 17) <= 1


def test_bad_aspect_is_refused():
    with pytest.raises(InputError, match="aspect"):
        Aperture(aspect=0.0)
    with pytest.raises(InputError, match="pixel aspect"):
        Aperture(pixel_aspect=float("nan"))
