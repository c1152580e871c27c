"""focuspull.io.colour: colour through OpenColorIO (OIIO's ColorConfig), cross-checked
against the published curves; log inputs round-trip; names, aliases, roles; previews."""
from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.errors import InputError
from focuspull.io.colour import DEFAULT_CONFIG, colour_setup, config_name, resolve_space
from focuspull.io.images import read_image, write_image
from focuspull.io.transfer import SHORT_NAMES, TRANSFER_NAMES, default_transfer_for

REC709 = colour_setup(working="lin_rec709")


def _srgb_eotf(v):  # IEC 61966-2-1
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _bt709_inverse_oetf(v):  # ITU-R BT.709
    a, b = 1.09929682680944, 0.018053968510807
    v = np.asarray(v, np.float64)
    return np.where(v < 4.5 * b, v / 4.5, ((v + a - 1) / a) ** (1 / 0.45))


def test_ocio_curves_match_the_published_formulas():
    codes = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    np.testing.assert_allclose(REC709.to_working(codes, "srgb"), _srgb_eotf(codes), atol=1e-4)
    # OCIO's BT.709 curve uses the standard's rounded constants (1.099, 0.018).
    np.testing.assert_allclose(REC709.to_working(codes, "rec709"), _bt709_inverse_oetf(codes), atol=3e-4)
    np.testing.assert_allclose(REC709.to_working(codes, "gamma2.2"), codes ** 2.2, atol=1e-4)
    # and back: encode(decode(v)) == v
    np.testing.assert_allclose(REC709.from_working(_srgb_eotf(codes), "srgb"), codes, atol=1e-4)


def test_log_curves_known_values():
    # ACEScct of mid grey 0.18 (S-2016-001): (log2(0.18) + 9.72) / 17.52 = 0.41358...
    acescg = colour_setup(working="ACEScg")
    assert float(acescg.from_working(np.float32(0.18), "acescct")) == pytest.approx(0.413588, abs=2e-4)
    # ARRI LogC3 EI800 of 0.18 in its own linear gamut: 0.391007 (ARRI's LogC formula).
    awg3 = colour_setup(working="Linear ARRI Wide Gamut 3")
    assert float(awg3.from_working(np.float32(0.18), "logc3")) == pytest.approx(0.391007, abs=2e-4)
    assert float(awg3.to_working(np.float32(0.391007), "ARRI LogC3 (EI800)")) == pytest.approx(0.18, rel=1e-3)


@pytest.mark.parametrize("space", ["acescct", "logc3", "ACEScct", "ARRI LogC3 (EI800)", "slog3"])
def test_log_inputs_round_trip_through_the_working_space_including_hdr(space):
    setup = colour_setup()
    # 1/1000 to 60 (HDR), three mild hues that every camera gamut holds
    rgb = (np.geomspace(1e-3, 60.0, 40)[:, None, None]
           * np.array([[1.0, 0.8, 0.6], [0.6, 0.8, 1.0], [0.7, 1.0, 0.7]])[None]).astype(np.float32)
    encoded = setup.from_working(rgb, space)
    assert encoded.max() < 1.5 and encoded.min() > -0.1  # log: HDR fits in a code range
    np.testing.assert_allclose(setup.to_working(encoded, space), rgb, rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("space", ["acescct", "logc3"])
def test_log_tiff_is_linearised_on_read_and_reencoded_on_write(tmp_path, space):
    setup = colour_setup()
    rng = np.random.default_rng(3)
    codes = (0.1 + 0.7 * rng.random((8, 12, 3))).astype(np.float32)
    write_image(tmp_path / "log.tif", codes, bits=16, transfer="linear")  # stored code values as they are
    stored = read_image(tmp_path / "log.tif", transfer="linear").pixels  # 16-bit quantised codes
    image = read_image(tmp_path / "log.tif", transfer=space)
    assert image.transfer == space
    np.testing.assert_allclose(image.pixels, setup.to_working(stored, space), rtol=1e-4, atol=1e-6)
    assert image.pixels.max() > codes.max()  # really decoded: a log code of 0.8 is light far above 1
    write_image(tmp_path / "back.tif", image.pixels, bits=16, transfer=space)
    back = read_image(tmp_path / "back.tif", transfer="linear").pixels
    np.testing.assert_allclose(back, codes, atol=2.0 / 65535)


def test_names_aliases_roles_and_unknown_names():
    path = config_name()
    assert resolve_space(path, "ACEScct") == "ACEScct"
    assert resolve_space(path, "acescct") == "ACEScct"
    assert resolve_space(path, "lin_ap1") == "ACEScg"  # alias
    assert resolve_space(path, "scene_linear") == "ACEScg"  # role
    assert resolve_space(path, "LogC3") == "ARRI LogC3 (EI800)"  # short name, any case
    assert resolve_space(path, "linear") is None
    with pytest.raises(InputError) as err:
        resolve_space(path, "LogC9")
    assert "LogC9" in err.value.message and "ARRI" in err.value.hint
    assert set(SHORT_NAMES) < set(TRANSFER_NAMES)


def test_config_from_environment_and_bad_config(monkeypatch, tmp_path):
    monkeypatch.delenv("OCIO", raising=False)
    assert config_name() == DEFAULT_CONFIG
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert config_name() == "ocio://cg-config-latest"
    assert config_name("/my/config.ocio") == "/my/config.ocio"
    with pytest.raises(InputError, match="does not exist"):
        colour_setup(str(tmp_path / "missing.ocio"))
    with pytest.raises(InputError, match="not scene-linear"):
        colour_setup(working="ACEScct")
    with pytest.raises(InputError, match="display"):
        colour_setup(display="My Projector")


def test_exr_written_from_the_working_space_carries_its_chromaticities(tmp_path):
    setup = colour_setup()
    write_image(tmp_path / "a.exr", np.full((4, 4, 3), 0.5, np.float32), colour=setup)
    spec = oiio.ImageInput.open(str(tmp_path / "a.exr")).spec()
    np.testing.assert_allclose(spec.getattribute("chromaticities"),
                               [0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767], atol=1e-4)
    assert spec.getattribute("colorInteropID") == "lin_ap1_scene"
    write_image(tmp_path / "b.exr", np.full((4, 4, 3), 0.5, np.float32), colour=REC709)
    spec = oiio.ImageInput.open(str(tmp_path / "b.exr")).spec()
    np.testing.assert_allclose(spec.getattribute("chromaticities")[:2], [0.64, 0.33], atol=1e-4)


def test_display_view_tone_maps_hdr_instead_of_clipping():
    setup = colour_setup()
    assert setup.view.startswith("ACES 2.0")
    ramp = np.geomspace(0.5, 64.0, 12, dtype=np.float32)[:, None].repeat(3, axis=1)
    shown = setup.to_display(ramp)[:, 0]
    assert np.all(np.diff(shown) > 1e-3)  # every brighter highlight stays brighter on screen
    assert shown[-1] <= 1.0 and shown[0] < 0.8
    clipped = np.clip(REC709.from_working(ramp, "srgb"), 0, 1)[:, 0]
    assert (clipped >= 1.0).sum() >= 8  # what a curve alone does: most of the ramp is white


@pytest.mark.parametrize("path, pixel_format, expected", [
    ("a.exr", "half", "linear"), ("a.png", "uint8", "srgb"), ("a.tif", "float", "linear"),
    ("a.tif", "uint16", "srgb"), ("a.dpx", None, "srgb")])
def test_default_transfer_for(path, pixel_format, expected):
    assert default_transfer_for(path, pixel_format) == expected
