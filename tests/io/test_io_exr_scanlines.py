"""The scanline EXR writer (io/exr_scanlines.py): the same bytes as OpenImageIO, or OpenImageIO.

Every case writes one image twice, through the fast path and through OpenImageIO alone, and
asks for the same header bytes (every attribute, its name and type) and the same stored values
(read back by OpenImageIO in the file's own formats).  On this machine the whole files are
byte-identical (both deflate with libdeflate at level 4); that is not asserted, since another
libdeflate may pack the same data differently."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.io import exr_scanlines, images
from focuspull.io.atomic import is_temp_path, remove_stale_temp_files
from focuspull.io.images import read_image, write_image

RNG = np.random.default_rng(11)


def _pixels(height, width, channels):
    pixels = (RNG.standard_normal((height, width, channels)) * 8).astype(np.float32)
    flat = pixels.reshape(-1)
    # Beyond half's range, the rounding edge (65519.99 -> 65504, 65520 -> inf), denormals,
    # signed zero, inf and NaN: the half conversion must round as OpenEXR does.
    specials = [np.inf, -np.inf, np.nan, 1e6, -1e6, 65519.99, 65520.0, 6e-8, 1e-5, -0.0, 2.0 ** -24, 1e-30]
    flat[:len(specials)] = specials[:flat.size]
    return pixels


def _header(data: bytes) -> bytes:
    pos = 8
    while data[pos]:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        pos = type_end + 5 + int.from_bytes(data[type_end + 1:type_end + 5], "little")
    return data[:pos + 1]


def _stored(path) -> list[bytes]:
    """Each channel's stored values, as bytes, read in the file's own formats."""
    inp = oiio.ImageInput.open(str(path))
    try:
        spec = inp.spec()
        formats = spec.channelformats or (spec.format,) * spec.nchannels
        return [np.ascontiguousarray(inp.read_image(0, 0, c, c + 1, str(f))).tobytes() for c, f in enumerate(formats)]
    finally:
        inp.close()


def _assert_same_file(tmp_path, pixels, names, monkeypatch, **kw) -> None:
    """The fast path writes what OpenImageIO writes."""
    fast, plain = tmp_path / "fast.exr", tmp_path / "plain.exr"
    write_image(fast, pixels, channel_names=names, **kw)
    with monkeypatch.context() as m:
        m.setattr(exr_scanlines, "supports", lambda spec: False)
        write_image(plain, pixels, channel_names=names, **kw)
    assert _header(fast.read_bytes()) == _header(plain.read_bytes())
    assert _stored(fast) == _stored(plain)


CASES = {
    "rgbz zip (the renderer's frames)": ((45, 37), ["R", "G", "B", "Z"], {}),
    "rgbaz none": ((17, 9), ["R", "G", "B", "A", "Z"], {"compression": "none"}),
    "rgba zips": ((20, 31), ["R", "G", "B", "A"], {"compression": "zips"}),
    "zip at level 6": ((33, 40), ["R", "G", "B", "Z"], {"compression": "zip:6"}),
    "all float": ((16, 16), ["R", "G", "B"], {"half": False}),
    "layers, one row": ((1, 50), ["R", "G", "B", "depth.Z", "N.x", "N.y"], {}),
    "one pixel": ((1, 1), ["Y"], {}),
    "a float colour channel": ((18, 7), ["R", "G", "B", "A"], {"formats": {"A": "float"}}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_file_is_the_one_openimageio_writes(tmp_path, monkeypatch, case):
    (height, width), names, kw = CASES[case]
    _assert_same_file(tmp_path, _pixels(height, width, len(names)), names, monkeypatch, **kw)


def test_overscan_windows_and_metadata_are_written_as_openimageio_writes_them(tmp_path, monkeypatch):
    height, width = 37, 29
    metadata = {"x": -8, "y": -4, "width": width, "height": height, "full_x": 0, "full_y": 0,
                "full_width": 21, "full_height": 29, "pixelAspectRatio": 2.0, "timecode": "01:00:04:05",
                "framesPerSecond": 23.976,
                "attributes": [["focuspull:job", "string", "{\"a\": 1}"], ["Copyright", "string", "shot 12"],
                               ["worldtocamera", "matrix", list(map(float, range(16)))]]}
    _assert_same_file(tmp_path, _pixels(height, width, 4), ["R", "G", "B", "Z"], monkeypatch, metadata=metadata)
    meta = read_image(tmp_path / "fast.exr").metadata
    assert (meta["x"], meta["y"], meta["full_width"], meta["full_height"]) == (-8, -4, 21, 29)


def test_a_real_frame_round_trips_with_its_input_metadata(tmp_path, monkeypatch):
    pixels = _pixels(64, 48, 4)
    write_image(tmp_path / "in.exr", pixels, channel_names=["R", "G", "B", "Z"], compression="piz")
    source = read_image(tmp_path / "in.exr")
    _assert_same_file(tmp_path, source.pixels, source.channel_names, monkeypatch, metadata=source.metadata)
    back = read_image(tmp_path / "fast.exr")
    np.testing.assert_array_equal(back.channel("Z"), pixels[..., 3])  # depth stays 32-bit
    with np.errstate(over="ignore"):  # beyond half's range is inf
        np.testing.assert_array_equal(back.channel("R"), pixels[..., 0].astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("compression", ["piz", "rle", "dwaa", "b44"])
def test_other_compressions_are_left_to_openimageio(tmp_path, compression):
    spec = oiio.ImageSpec(8, 8, 3, "half")
    spec.attribute("compression", compression)
    assert not exr_scanlines.supports(spec)
    write_image(tmp_path / "x.exr", _pixels(8, 8, 3), compression=compression)
    assert read_image(tmp_path / "x.exr").metadata["compression"].startswith(compression)


def test_tiles_and_integer_channels_are_left_to_openimageio():
    spec = oiio.ImageSpec(64, 64, 3, "half")
    spec.attribute("compression", "zip")
    assert exr_scanlines.supports(spec)
    spec.tile_width = spec.tile_height = 32
    assert not exr_scanlines.supports(spec)
    ints = oiio.ImageSpec(8, 8, 2, "half")
    ints.channelformats = (oiio.TypeHalf, oiio.TypeUInt)
    assert not exr_scanlines.supports(ints)


def test_a_header_it_cannot_follow_goes_to_openimageio(tmp_path, monkeypatch):
    """If OpenImageIO's header were ever not what the fast path expects, the frame is still
    written, by OpenImageIO, and nothing else is left in the folder."""
    def odd(spec, beside):
        raise ValueError("a header this cannot follow")

    pixels = _pixels(20, 20, 4)
    names = ["R", "G", "B", "Z"]
    write_image(tmp_path / "plain.exr", pixels, channel_names=names)
    monkeypatch.setattr(exr_scanlines, "_oiio_header", odd)
    write_image(tmp_path / "fallback.exr", pixels, channel_names=names)
    assert (tmp_path / "fallback.exr").read_bytes() == (tmp_path / "plain.exr").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["fallback.exr", "plain.exr"]


def test_the_header_stub_is_removed_after_every_write(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"f.{i}.exr", _pixels(10, 10, 4), channel_names=["R", "G", "B", "Z"])
    assert sorted(os.listdir(tmp_path)) == ["f.0.exr", "f.1.exr", "f.2.exr"]


_STUCK = textwrap.dedent("""
    import sys, time, numpy as np
    from focuspull.io import exr_scanlines
    from focuspull.io.images import write_image
    where, final = sys.argv[1], sys.argv[2]

    def stuck(*args, **kwargs):
        print("inside", flush=True)
        time.sleep(600)

    if where == "header":  # the one-row stub is on disk, about to be read back
        exr_scanlines.open = lambda path, mode="r": stuck() if "r" in mode else open(path, mode)
    else:  # half of the frame's bytes are in its temp file
        class _HalfWritten:
            def __init__(self, fh):
                self.fh = fh
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                self.fh.close()
            def write(self, data):
                self.fh.write(data)
            def writelines(self, chunks):
                self.fh.write(b"".join(chunks[:len(chunks) // 2]))
                self.fh.flush()
                stuck()
        exr_scanlines.open = lambda path, mode="r": _HalfWritten(open(path, mode)) if "w" in mode else open(path, mode)
    write_image(final, np.ones((64, 64, 4), np.float32), channel_names=["R", "G", "B", "Z"])
""")


@pytest.mark.parametrize("where", ["header", "pixels"])
def test_a_writer_killed_mid_frame_leaves_only_temps_the_sweep_removes(tmp_path, where):
    final = tmp_path / "shot.0001.exr"
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, where, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"  # it is there now: no timing involved
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = os.listdir(tmp_path)
    assert left and all(is_temp_path(n) for n in left) and not final.exists()
    assert sorted(os.path.basename(p) for p in remove_stale_temp_files(str(tmp_path))) == sorted(left)
    assert os.listdir(tmp_path) == []
