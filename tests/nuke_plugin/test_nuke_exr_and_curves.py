"""The node's own EXR codec against OpenImageIO, and curve -> keyframe edge cases."""
from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.io.images import write_image
from focuspull.spec.keyframes import Animated
from focuspull_nuke.curves import Curve, to_keyframes
from focuspull_nuke.exr import ExrError, read_exr, write_exr


def _oiio(path):
    inp = oiio.ImageInput.open(str(path))
    try:
        return inp.read_image(oiio.FLOAT), list(inp.spec().channelnames)
    finally:
        inp.close()


@pytest.mark.parametrize("compression", ["zips", "zip", "none", "rle"])
@pytest.mark.parametrize("half", [True, False])
def test_reader_gives_the_pixels_openimageio_reads(tmp_path, compression, half):
    rng = np.random.default_rng(3)
    px = (rng.random((37, 21, 5)) * 20 - 2).astype(np.float32)
    path = str(tmp_path / "f.exr")
    write_image(path, px, ["R", "G", "B", "A", "depth.Z"], compression=compression, half=half)
    want, names = _oiio(path)
    img = read_exr(path)
    assert sorted(img.channels) == sorted(names)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(img.channels[name], want[..., i])


def test_writer_output_reads_back_in_openimageio_with_depth_kept_float(tmp_path):
    rng = np.random.default_rng(4)
    planes = {"R": rng.random((9, 13)), "A": rng.random((9, 13)), "depth.Z": 1000 + rng.random((9, 13))}
    path = str(tmp_path / "w.exr")
    write_exr(path, planes, half=True, display_window=(0, 0, 12, 8))
    got, names = _oiio(path)
    assert sorted(names) == ["A", "R", "depth.Z"]
    for i, name in enumerate(names):
        want = np.asarray(planes[name], np.float32)
        if name == "depth.Z":
            np.testing.assert_array_equal(got[..., i], want)  # 32-bit: far depth is not quantised
        else:
            np.testing.assert_array_equal(got[..., i], want.astype(np.float16).astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["w.exr"]  # no temp file left


def test_reader_refuses_what_it_cannot_read_with_a_hint(tmp_path):
    path = str(tmp_path / "p.exr")
    write_image(path, np.ones((4, 4, 3), np.float32), compression="piz")
    with pytest.raises(ExrError, match="compression"):
        read_exr(path)
    (tmp_path / "x.exr").write_bytes(b"not an exr")
    with pytest.raises(ExrError, match="not an OpenEXR"):
        read_exr(str(tmp_path / "x.exr"))


def test_a_data_window_smaller_than_the_format_is_placed_in_the_frame():
    from focuspull_nuke.exr import ExrImage

    img = ExrImage({"R": np.ones((2, 3), np.float32)}, (1, 2, 3, 3), (0, 0, 4, 4))
    full = img.full_frame("R")
    assert full.shape == (5, 5) and full.sum() == 6 and full[2:4, 1:4].all()


def _curve(keys, fn):
    return Curve(tuple(keys), fn)


def test_linear_keys_are_kept_and_anything_nuke_evaluates_differently_is_baked():
    keys = [(1.0, 2.0, "linear"), (5.0, 6.0, "linear")]
    linear = _curve(keys, lambda t: 2.0 + (min(max(t, 1), 5) - 1.0))
    value, baked = to_keyframes(linear, range(1, 8))
    assert value == {"keys": {"1": 2.0, "5": 6.0}, "interpolation": "linear"} and not baked
    # Same keys, but Nuke extrapolates linearly after the last key: baked, exact on every frame.
    extrapolated = _curve(keys, lambda t: 2.0 + (max(t, 1) - 1.0))
    value, baked = to_keyframes(extrapolated, range(1, 8))
    assert baked and all(Animated.from_value(value).value_at(f) == 2.0 + f - 1 for f in range(1, 8))
    smooth = _curve([(1.0, 0.0, "nuke:0"), (4.0, 3.0, "nuke:0")], lambda t: float(t) ** 0.5)
    value, baked = to_keyframes(smooth, range(2, 4), convert=lambda v: 10 - v)
    animated = Animated.from_value(value)
    assert baked and [animated.value_at(f) for f in (1, 2, 3, 4)] == [10 - f ** 0.5 for f in (1, 2, 3, 4)]


def _oiio_write(path, px, software):
    spec = oiio.ImageSpec(px.shape[1], px.shape[0], px.shape[2], oiio.FLOAT)
    spec.channelnames = ("R", "G", "B", "A", "depth.Z")
    spec.attribute("compression", "zips")
    spec.attribute("Software", software)  # a header stamp, as Nuke writes times and versions
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(px)
    out.close()


def test_the_cache_digest_follows_the_pixels_not_the_header(tmp_path):
    from focuspull_nuke.exr import pixel_digest

    px = np.random.default_rng(5).random((16, 20, 5)).astype(np.float32)
    _oiio_write(tmp_path / "a.exr", px, "Nuke 15.0v4 at 10:00")
    _oiio_write(tmp_path / "b.exr", px, "Nuke 15.0v4 at 11:30, a longer header")
    assert (tmp_path / "a.exr").read_bytes() != (tmp_path / "b.exr").read_bytes()
    assert pixel_digest(str(tmp_path / "a.exr")) == pixel_digest(str(tmp_path / "b.exr"))
    px[7, 3, 4] += 0.5  # one depth sample
    _oiio_write(tmp_path / "c.exr", px, "Nuke 15.0v4 at 10:00")
    assert pixel_digest(str(tmp_path / "c.exr")) != pixel_digest(str(tmp_path / "a.exr"))
