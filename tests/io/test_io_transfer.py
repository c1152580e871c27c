"""focuspull.io.transfer: named curves, known values, exact inverses, defaults by file type."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.errors import InputError
from focuspull.io.transfer import TRANSFER_NAMES, default_transfer_for, from_linear, to_linear


def test_known_values():
    assert to_linear(0.5, "srgb") == pytest.approx(0.21404, abs=1e-5)
    assert from_linear(0.0031308, "srgb") == pytest.approx(0.04045, abs=1e-5)
    assert to_linear(0.5, "gamma2.2") == pytest.approx(0.5 ** 2.2, rel=1e-6)
    assert to_linear(0.5, "gamma2.4") == pytest.approx(0.5 ** 2.4, rel=1e-6)
    assert from_linear(0.018, "rec709") == pytest.approx(0.081, abs=2e-4)
    assert from_linear(0.5, "rec709") == pytest.approx(1.099 * 0.5 ** 0.45 - 0.099, abs=2e-4)
    assert to_linear(0.3, "linear") == pytest.approx(0.3)
    for name in TRANSFER_NAMES:
        assert to_linear(0.0, name) == pytest.approx(0.0, abs=1e-7)
        assert to_linear(1.0, name) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", TRANSFER_NAMES)
def test_round_trips_on_unit_interval(name):
    values = np.linspace(0.0, 1.0, 2001, dtype=np.float32)
    np.testing.assert_allclose(from_linear(to_linear(values, name), name), values, atol=2e-6)
    np.testing.assert_allclose(to_linear(from_linear(values, name), name), values, atol=2e-6)


@pytest.mark.parametrize("name", TRANSFER_NAMES)
def test_curves_are_continuous_and_increasing(name):
    values = np.linspace(0.0, 1.0, 20001)
    decoded = to_linear(values, name).astype(np.float64)
    steps = np.diff(decoded)
    assert (steps >= 0).all()
    assert steps.max() < 1e-3  # no jump at a knee


@pytest.mark.parametrize("name", TRANSFER_NAMES)
def test_out_of_range_values_are_extended_not_clipped(name):
    values = np.array([-0.25, 1.5, 4.0], np.float32)
    np.testing.assert_allclose(to_linear(from_linear(values, name), name), values, rtol=1e-5)
    assert from_linear(4.0, name) > from_linear(1.0, name)


def test_shape_and_dtype_kept():
    image = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    out = to_linear(image, "srgb")
    assert out.shape == (4, 5, 3) and out.dtype == np.float32


def test_names_are_case_insensitive_and_unknown_names_are_listed():
    assert to_linear(0.5, "sRGB") == to_linear(0.5, "srgb")
    with pytest.raises(InputError) as err:
        to_linear(0.5, "log")
    assert "srgb" in err.value.hint and "rec709" in err.value.hint


@pytest.mark.parametrize("path, pixel_format, expected", [
    ("a.exr", None, "linear"), ("A.EXR", "half", "linear"), ("a.hdr", None, "linear"),
    ("a.png", None, "srgb"), ("a.jpg", "uint8", "srgb"), ("a.tif", "uint16", "srgb"),
    ("a.tif", "float", "linear"), ("a.dpx", "uint16", "srgb"),
])
def test_default_transfer_for(path, pixel_format, expected):
    assert default_transfer_for(path, pixel_format) == expected
