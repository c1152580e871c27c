"""focuspull.exr_lite, the hosts' numpy + zlib EXR codec, against OpenImageIO (the reference)."""
from __future__ import annotations

import os
import struct

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull import exr_lite
from focuspull.exr_lite import ExrError, ExrImage, channel_names, find_depth_channel, pixel_digest, read_exr, write_exr
from focuspull.io import channels as io_channels
from focuspull.io.images import read_image, write_image
from focuspull.spec import vocabulary


def _oiio(path):
    inp = oiio.ImageInput.open(str(path))
    try:
        spec = inp.spec()
        window = (spec.full_x, spec.full_y, spec.full_x + spec.full_width - 1, spec.full_y + spec.full_height - 1)
        return inp.read_image(oiio.FLOAT), list(spec.channelnames), window
    finally:
        inp.close()


# -------------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("compression", ["none", "rle", "zips", "zip"])
@pytest.mark.parametrize("half", [True, False])
def test_reader_gives_the_pixels_openimageio_reads(tmp_path, compression, half):
    rng = np.random.default_rng(3)
    px = (rng.random((37, 21, 5)) * 50 - 5).astype(np.float32)  # 37 rows: a partial 16-line chunk
    path = str(tmp_path / "f.exr")
    write_image(path, px, ["R", "G", "B", "A", "depth.Z"], compression=compression, half=half)
    want, names, _ = _oiio(path)
    img = read_exr(path)
    assert sorted(img.channels) == sorted(names) == sorted(channel_names(path))
    for i, name in enumerate(names):
        assert img.channels[name].dtype == np.float32 and img.channels[name].shape == (37, 21)
        np.testing.assert_array_equal(img.channels[name], want[..., i])
    assert (img.width, img.height) == (21, 37) and img.data_window == (0, 0, 20, 36)
    assert find_depth_channel(channel_names(path)) == "depth.Z"
    reference = read_image(path)  # the server's reader agrees too
    for i, name in enumerate(reference.channel_names):
        np.testing.assert_array_equal(img.channels[name], reference.pixels[..., i])


def test_a_data_window_inside_the_display_window_is_read_and_placed(tmp_path):
    px = np.random.default_rng(6).random((5, 7, 3)).astype(np.float32)
    spec = oiio.ImageSpec(7, 5, 3, oiio.HALF)
    spec.x, spec.y, spec.full_x, spec.full_y, spec.full_width, spec.full_height = 3, 2, 0, 0, 12, 9
    spec.attribute("compression", "zip")
    path = str(tmp_path / "dw.exr")
    out = oiio.ImageOutput.create(path)
    assert out.open(path, spec)
    out.write_image(px)
    out.close()
    img = read_exr(path)
    assert img.data_window == (3, 2, 9, 6) and img.display_window == (0, 0, 11, 8)
    full = img.full_frame("G")
    assert full.shape == (9, 12) and full[:2].sum() == 0 and full[:, :3].sum() == 0
    np.testing.assert_array_equal(full[2:7, 3:10], px[..., 1].astype(np.float16).astype(np.float32))


def test_full_frame_crops_a_data_window_larger_than_the_format():
    img = ExrImage({"R": np.ones((2, 3), np.float32)}, (1, 2, 3, 3), (0, 0, 4, 4))
    full = img.full_frame("R")
    assert full.shape == (5, 5) and full.sum() == 6 and full[2:4, 1:4].all()
    big = ExrImage({"R": np.arange(36, dtype=np.float32).reshape(6, 6)}, (-1, -1, 4, 4), (0, 0, 2, 2))
    np.testing.assert_array_equal(big.full_frame("R"), np.arange(36).reshape(6, 6)[1:4, 1:4])


def test_reader_refuses_what_it_cannot_read_with_a_hint(tmp_path):
    path = str(tmp_path / "p.exr")
    write_image(path, np.ones((4, 4, 3), np.float32), compression="piz")
    with pytest.raises(ExrError, match="uses piz compression; this reader takes none, RLE, ZIPS and ZIP") as info:
        read_exr(path)
    assert info.value.hint == exr_lite.DEFAULT_HINT and exr_lite.DEFAULT_HINT in str(info.value)
    with pytest.raises(ExrError, match="piz compression.* — set the Saver to ZIP") as info:
        read_exr(path, hint="set the Saver to ZIP")  # a host says it in its own words
    with pytest.raises(ExrError, match="piz compression"):
        pixel_digest(path)
    assert channel_names(path) == ["B", "G", "R"]  # the header alone is still readable
    (tmp_path / "x.exr").write_bytes(b"not an exr at all")
    for fn in (read_exr, channel_names, pixel_digest):
        with pytest.raises(ExrError, match="not an OpenEXR file"):
            fn(str(tmp_path / "x.exr"))


def test_a_truncated_file_says_so_wherever_it_is_cut(tmp_path):
    rng = np.random.default_rng(8)
    path = str(tmp_path / "t.exr")
    write_exr(path, {"R": rng.random((40, 30)), "Z": rng.random((40, 30))}, compression="zip")
    data = open(path, "rb").read()
    _attrs, table_at = exr_lite._parse_header(data, path, "")
    first_chunk = struct.unpack_from("<Q", data, table_at)[0]
    cuts = {"header": 12, "table": table_at + 4, "first chunk": first_chunk + 10, "last chunk": len(data) - 100,
            "last byte": len(data) - 1}
    for where, cut in cuts.items():
        cut_path = tmp_path / f"cut_{cut}.exr"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ExrError, match="truncated file") as info:
            read_exr(str(cut_path))
        assert "again" in info.value.hint, where
    assert read_exr(path).channels["R"].shape == (40, 30)  # the whole file reads


def test_channel_names_reads_only_the_header(tmp_path):
    path = str(tmp_path / "h.exr")
    write_exr(path, {"R": np.zeros((300, 400)), "depth.Z": np.ones((300, 400))}, compression="none")
    data = open(path, "rb").read()
    (tmp_path / "head.exr").write_bytes(data[:2000])  # header + part of the table, no pixels
    assert channel_names(str(tmp_path / "head.exr")) == ["R", "depth.Z"]


# -------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("compression", ["zip", "none"])
@pytest.mark.parametrize("depth", ["depth.Z", "Z"])
def test_writer_output_reads_back_in_openimageio_with_depth_kept_float(tmp_path, compression, depth):
    rng = np.random.default_rng(4)
    planes = {"R": rng.random((19, 40)), "G": rng.random((19, 40)), "A": rng.random((19, 40)),
              depth: 1000 + rng.random((19, 40))}
    path = str(tmp_path / "w.exr")
    assert write_exr(path, planes, half=True, compression=compression, display_window=(0, 0, 49, 24)) == path
    got, names, window = _oiio(path)
    assert sorted(names) == sorted(planes) and window == (0, 0, 49, 24)
    for i, name in enumerate(names):
        want = np.asarray(planes[name], np.float32)
        if name == depth:
            np.testing.assert_array_equal(got[..., i], want)  # 32-bit: far depth is not quantised
        else:
            np.testing.assert_array_equal(got[..., i], want.astype(np.float16).astype(np.float32))
    img = read_exr(path)
    for name in planes:
        np.testing.assert_array_equal(img.channels[name], got[..., names.index(name)])
    assert os.listdir(tmp_path) == ["w.exr"]  # no temp file left


def test_float_writing_and_the_size_of_zip_against_none(tmp_path):
    y, x = np.mgrid[0:64, 0:80]
    planes = {"R": (x / 80.0).astype(np.float32), "Z": (10 + y).astype(np.float32)}  # smooth: compresses
    write_exr(str(tmp_path / "z.exr"), planes, half=False, compression="zip")
    write_exr(str(tmp_path / "n.exr"), planes, half=False, compression="none")
    for name in ("z.exr", "n.exr"):
        got, names, _ = _oiio(tmp_path / name)
        for i, c in enumerate(names):
            np.testing.assert_array_equal(got[..., i], planes[c])  # float: exact
    assert os.path.getsize(tmp_path / "z.exr") < os.path.getsize(tmp_path / "n.exr") / 2


def test_writer_refuses_bad_input_and_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    with pytest.raises(ExrError, match="'piz' compression") as info:
        write_exr(str(tmp_path / "a.exr"), {"R": np.zeros((2, 2))}, compression="piz")
    assert "none, zip" in info.value.hint
    with pytest.raises(ExrError, match="no channels"):
        write_exr(str(tmp_path / "a.exr"), {})
    with pytest.raises(ExrError, match=r"channels R for .* differ in size from G \(3 x 2\)"):
        write_exr(str(tmp_path / "a.exr"), {"R": np.zeros((2, 2)), "G": np.zeros((3, 2))})
    write_exr(str(tmp_path / "a.exr"), {"R": np.ones((2, 2))})  # an old frame stays whole

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(exr_lite.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_exr(str(tmp_path / "a.exr"), {"R": np.zeros((2, 2))})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["a.exr"]
    assert read_exr(str(tmp_path / "a.exr")).channels["R"].sum() == 4


# ------------------------------------------------------------------------------------ depth, digest
def test_one_list_of_depth_channels_for_the_server_and_the_hosts():
    assert io_channels.DEPTH_CHANNEL_CANDIDATES is vocabulary.DEPTH_CHANNEL_CANDIDATES
    for names in (["R", "G", "B", "Z", "depth.Z"], ["R", "depth.Z"], ["R", "Depth"], ["A", "zDepth"]):
        assert find_depth_channel(names) == io_channels.find_depth_channel(names)
    assert find_depth_channel(["R", "G", "B"]) is None
    assert find_depth_channel({"depth.z": 1, "R": 2}) == "depth.z"  # any container of names


def _oiio_write(path, px, software):
    spec = oiio.ImageSpec(px.shape[1], px.shape[0], px.shape[2], oiio.FLOAT)
    spec.channelnames = ("R", "G", "B", "A", "depth.Z")
    spec.attribute("compression", "zips")
    spec.attribute("Software", software)  # a header stamp, as Nuke writes times and versions
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(px)
    out.close()


def test_the_digest_follows_the_pixels_not_the_header(tmp_path):
    px = np.random.default_rng(5).random((16, 20, 5)).astype(np.float32)
    _oiio_write(tmp_path / "a.exr", px, "Nuke 15.0v4 at 10:00")
    _oiio_write(tmp_path / "b.exr", px, "Nuke 15.0v4 at 11:30, a longer header")
    assert (tmp_path / "a.exr").read_bytes() != (tmp_path / "b.exr").read_bytes()
    assert pixel_digest(str(tmp_path / "a.exr")) == pixel_digest(str(tmp_path / "b.exr"))
    px[7, 3, 4] += 0.5  # one depth sample
    _oiio_write(tmp_path / "c.exr", px, "Nuke 15.0v4 at 10:00")
    assert pixel_digest(str(tmp_path / "c.exr")) != pixel_digest(str(tmp_path / "a.exr"))
    planes = {"R": px[..., 0], "depth.Z": px[..., 4]}  # the writer is deterministic too
    write_exr(str(tmp_path / "d.exr"), planes)
    write_exr(str(tmp_path / "e.exr"), planes)
    assert pixel_digest(str(tmp_path / "d.exr")) == pixel_digest(str(tmp_path / "e.exr"))
