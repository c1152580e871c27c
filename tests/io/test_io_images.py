"""focuspull.io.images: OIIO read/write, channels, metadata, transfer, atomic writes, resume rule."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.errors import InputError, SequenceError
from focuspull.io import images
from focuspull.io.atomic import STALE_TEMP_AGE_S, host_token, is_temp_path, remove_stale_temp_files, temp_path_for
from focuspull.io.channels import find_depth_channel
from focuspull.io.images import Image, is_complete_frame, read_image, write_image
from focuspull.io.colour import from_linear, to_linear

H, W = 48, 64
RNG = np.random.default_rng(7)


def _rgbaz(depth_scale=100.0):
    pixels = RNG.random((H, W, 5), dtype=np.float32)
    pixels[..., :3] *= pixels[..., 3:4]          # premultiplied
    pixels[..., 4] = 0.5 + depth_scale * pixels[..., 4]  # metres, beyond half's precision
    return pixels


def _listing(directory):
    return sorted(os.listdir(directory))


# --- EXR round trips ---------------------------------------------------------------

def test_exr_half_round_trip_keeps_depth_in_float(tmp_path):
    pixels = _rgbaz()
    path = write_image(tmp_path / "shot.0001.exr", pixels, ["R", "G", "B", "A", "Z"])
    image = read_image(path)
    assert image.channel_names == ["R", "G", "B", "A", "Z"]
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (H, W, 5)
    assert image.metadata["channel_formats"] == ["half", "half", "half", "half", "float"]
    np.testing.assert_allclose(image.pixels[..., :4], pixels[..., :4], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(image.channel("Z"), pixels[..., 4])  # float: exact
    # half really is half: colour is quantised (a float write would be exact)
    assert np.abs(image.pixels[..., :4] - pixels[..., :4]).max() > 0


def test_exr_float_round_trip_is_exact_with_layer_names(tmp_path):
    pixels = RNG.standard_normal((H, W, 6)).astype(np.float32) * 10
    names = ["R", "G", "B", "depth.Z", "diffuse.R", "id"]
    write_image(tmp_path / "f.exr", pixels, names, half=False, compression="none")
    image = read_image(tmp_path / "f.exr")
    # EXR keeps channels by name, not by order (OpenEXR sorts them): look them up by name
    assert sorted(image.channel_names) == sorted(names)
    assert image.metadata["channel_formats"] == ["float"] * 6
    for index, name in enumerate(names):
        np.testing.assert_array_equal(image.channel(name), pixels[..., index])
    picked = read_image(tmp_path / "f.exr", channels=["depth.Z", "R"])
    assert picked.channel_names == ["depth.Z", "R"]
    np.testing.assert_array_equal(picked.pixels, pixels[..., [3, 0]])


@pytest.mark.parametrize("compression", ["zip", "piz", "dwaa", "none", "rle", "pxr24", "b44"])
def test_exr_compression_is_written(tmp_path, compression):
    pixels = _rgbaz()[..., :4]
    write_image(tmp_path / "c.exr", pixels, compression=compression)
    image = read_image(tmp_path / "c.exr")
    assert image.metadata["compression"] == compression
    assert np.abs(image.pixels - pixels).mean() < 0.05  # lossy ones too, loosely


def test_unknown_compression_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as err:
        write_image(tmp_path / "c.exr", _rgbaz()[..., :4], compression="zstd-ultra")
    assert "piz" in err.value.hint
    assert _listing(tmp_path) == []


def test_exr_metadata_survives_a_round_trip(tmp_path):
    metadata = {"pixelAspectRatio": 2.0, "timecode": "01:00:04:05", "framesPerSecond": 23.976,
                "x": 10, "y": -4, "width": W, "height": H,
                "full_x": 0, "full_y": 0, "full_width": 2048, "full_height": 858}
    write_image(tmp_path / "m.exr", _rgbaz()[..., :4], metadata=metadata, compression="piz")
    meta = read_image(tmp_path / "m.exr").metadata
    assert meta["pixelAspectRatio"] == 2.0
    assert meta["timecode"] == "01:00:04:05"
    assert meta["framesPerSecond"] == [24000, 1001]
    assert (meta["x"], meta["y"], meta["width"], meta["height"]) == (10, -4, W, H)
    assert (meta["full_x"], meta["full_y"], meta["full_width"], meta["full_height"]) == (0, 0, 2048, 858)
    # passing the read metadata on (what the pipeline does) keeps it all, bit for bit
    write_image(tmp_path / "out.exr", _rgbaz()[..., :4], metadata=meta, compression="zip")
    again = read_image(tmp_path / "out.exr").metadata
    for key in ("pixelAspectRatio", "smpte:TimeCode", "framesPerSecond", "x", "y", "full_width", "full_height"):
        assert again[key] == meta[key], key
    assert again["compression"] == "zip"  # the write's own compression wins
    # and another program (plain OIIO) sees the same attributes
    spec = oiio.ImageInput.open(str(tmp_path / "out.exr")).spec()
    assert spec.getattribute("PixelAspectRatio") == 2.0 and (spec.x, spec.y) == (10, -4)


def test_metadata_of_another_size_is_refused(tmp_path):
    with pytest.raises(InputError) as err:
        write_image(tmp_path / "m.exr", _rgbaz()[..., :4], metadata={"width": 32, "height": 24})
    assert "32x24" in err.value.message and f"{W}x{H}" in err.value.message


# --- display formats ----------------------------------------------------------------

def test_png16_transfer_round_trip_and_stored_values_are_srgb(tmp_path):
    # Light inside the PNG's gamut (the working space, ACEScg, is wider than sRGB's).
    linear = to_linear(RNG.random((H, W, 3), dtype=np.float32), "srgb")
    write_image(tmp_path / "a.png", linear, bits=16)
    image = read_image(tmp_path / "a.png")
    assert image.transfer == "srgb" and image.metadata["format"] == "uint16"
    np.testing.assert_allclose(image.pixels, linear, atol=2e-4)
    stored = read_image(tmp_path / "a.png", transfer="linear").pixels  # the encoded values as stored
    np.testing.assert_allclose(stored, from_linear(linear, "srgb"), atol=1.0 / 65535)


def test_png8_known_value_and_clipping(tmp_path):
    linear = np.zeros((2, 2, 3), np.float32)
    linear[0, 0] = 0.21404   # sRGB 0.5
    linear[0, 1] = 4.0       # a highlight: clipped to white in an integer file
    linear[1, 0] = -1.0      # below black: clipped to 0
    write_image(tmp_path / "k.png", linear)
    stored = read_image(tmp_path / "k.png", transfer="linear").pixels
    assert stored[0, 0, 0] == pytest.approx(0.5, abs=1.0 / 255)
    assert stored[0, 1, 0] == 1.0 and stored[1, 0, 0] == 0.0


def test_png_alpha_is_straight_on_disk_and_premultiplied_in_memory(tmp_path):
    colour_linear, alpha = 0.3, 0.5
    pixels = np.empty((4, 4, 4), np.float32)
    pixels[..., :3] = colour_linear * alpha
    pixels[..., 3] = alpha
    write_image(tmp_path / "a.png", pixels, bits=16)
    stored = read_image(tmp_path / "a.png", transfer="linear")  # still premultiplies, in the stored encoding
    spec_reader = oiio.ImageInput.open(str(tmp_path / "a.png"),
                                       _unassociated_config())
    raw = spec_reader.read_image("float")
    spec_reader.close()
    assert raw[0, 0, 0] == pytest.approx(float(from_linear(colour_linear, "srgb")), abs=1e-4)  # straight
    image = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(image.pixels, pixels, atol=1e-4)
    assert stored.pixels[0, 0, 0] == pytest.approx(raw[0, 0, 0] * alpha, abs=1e-4)


def _unassociated_config():
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return config


@pytest.mark.parametrize("name, bits, tolerance", [("t.tif", 16, 1e-4), ("d.dpx", 10, 2e-3), ("j.jpg", 8, 0.06)])
def test_other_display_formats_round_trip(tmp_path, name, bits, tolerance):
    linear = np.full((H, W, 3), 0.18, np.float32)
    linear[:, : W // 2] = 0.6
    write_image(tmp_path / name, linear)
    image = read_image(tmp_path / name)
    if name.endswith(".dpx"):
        assert image.metadata["bits_per_sample"] == bits
    np.testing.assert_allclose(image.pixels, linear, atol=tolerance)


def test_grey_and_rgba_helpers(tmp_path):
    grey = RNG.random((H, W), dtype=np.float32)
    write_image(tmp_path / "g.exr", grey, half=False)
    image = read_image(tmp_path / "g.exr")
    assert image.channel_names == ["Y"]
    rgb = image.rgba()
    assert rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    four = Image(RNG.random((2, 3, 5), dtype=np.float32), ["A", "Z", "B", "G", "R"])
    np.testing.assert_array_equal(four.rgba(), four.pixels[..., [4, 3, 2, 0]])


def test_channel_errors_name_the_file_and_the_channels(tmp_path):
    write_image(tmp_path / "shot.0101.exr", _rgbaz()[..., :4])
    image = read_image(tmp_path / "shot.0101.exr")
    with pytest.raises(SequenceError) as err:
        image.channel("Z")
    assert "shot.0101.exr" in err.value.message and "R,G,B,A" in err.value.message
    with pytest.raises(SequenceError) as err:
        read_image(tmp_path / "shot.0101.exr", channels=["R", "depth.Z"])
    assert "depth.Z" in err.value.message and "R,G,B,A" in err.value.message
    with pytest.raises(SequenceError) as err:
        image.depth_channel()
    assert "--depth-channel" in err.value.hint


def test_missing_and_garbage_files_raise_sequence_error(tmp_path):
    with pytest.raises(SequenceError) as err:
        read_image(tmp_path / "nope.exr")
    assert "nope.exr" in err.value.message and err.value.hint
    (tmp_path / "junk.exr").write_bytes(b"not an image at all")
    with pytest.raises(SequenceError) as err:
        read_image(tmp_path / "junk.exr")
    assert "junk.exr" in err.value.message


def test_write_rejects_bad_arrays_and_names(tmp_path):
    with pytest.raises(InputError):
        write_image(tmp_path / "a.exr", np.zeros((4, 4, 5), np.float32))  # 5 channels need names
    with pytest.raises(InputError):
        write_image(tmp_path / "a.exr", np.zeros((4, 4, 2), np.float32), ["R", "R"])
    with pytest.raises(InputError):
        write_image(tmp_path / "a.exr", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError):
        write_image(tmp_path / "a.exr", np.zeros((4,), np.float32))
    with pytest.raises(InputError):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 4), np.float32))  # JPEG cannot keep alpha
    with pytest.raises(InputError):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32), bits=32)
    with pytest.raises(InputError):
        write_image(tmp_path / "a.xyz", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError) as err:
        write_image(tmp_path / "no_such_dir" / "a.exr", np.zeros((4, 4, 3), np.float32))
    assert "does not exist" in err.value.message
    assert _listing(tmp_path) == []


# --- depth channel lookup -------------------------------------------------------------

def test_find_depth_channel_order_and_requests():
    assert find_depth_channel(["R", "G", "B", "depth.Z", "Z"]) == "Z"
    assert find_depth_channel(["R", "G", "B", "A", "depth.Z"]) == "depth.Z"
    assert find_depth_channel(["R", "Depth.Z"]) == "Depth.Z"
    assert find_depth_channel(["R", "G", "B", "Z", "myz"], "myz") == "myz"
    assert find_depth_channel(["Y"], depth_only=True) == "Y"
    assert find_depth_channel(["R", "G", "B"], depth_only=True) == "R"
    assert find_depth_channel(["disp"], depth_only=True) == "disp"


def test_find_depth_channel_errors_list_the_channels():
    with pytest.raises(SequenceError) as err:
        find_depth_channel(["R", "G", "B", "A"], path="/plates/shot.0101.exr")
    assert "shot.0101.exr" in err.value.message and "R,G,B,A" in err.value.message
    assert "--depth-channel" in err.value.hint
    with pytest.raises(SequenceError) as err:
        find_depth_channel(["R", "G", "B", "depth.Z"], "depth.z", path="a.exr")
    assert "'depth.z'" in err.value.message and "depth.Z" in err.value.message
    with pytest.raises(SequenceError):
        find_depth_channel(["R", "G", "B"])  # a plate is not depth unless it is a depth-only file


# --- atomic writes --------------------------------------------------------------------

class _CrashingOutput:
    """An OIIO ImageOutput that creates the real file, writes a header, then fails."""

    def __init__(self, real):
        self.real = real

    def open(self, path, spec):
        return self.real.open(path, spec)

    def write_image(self, pixels):
        self.real.write_scanline(0, 0, pixels[0])  # part of the data reached the disk
        raise RuntimeError("disk on fire")

    def close(self):
        return self.real.close()

    def geterror(self):
        return self.real.geterror()


class _CrashingOIIO:
    def __getattr__(self, name):
        return getattr(oiio, name)

    class ImageOutput:
        created: list[str] = []

        @staticmethod
        def create(path):
            _CrashingOIIO.ImageOutput.created.append(path)
            return _CrashingOutput(oiio.ImageOutput.create(path))


# PIZ: written by OpenImageIO itself (zip and none take io/exr_scanlines.py; tests/io/test_io_exr_scanlines.py).
def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "oiio", _CrashingOIIO())
    _CrashingOIIO.ImageOutput.created.clear()
    final = tmp_path / "shot.0001.exr"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_image(final, _rgbaz()[..., :4], compression="piz")
    temp = _CrashingOIIO.ImageOutput.created[0]
    # the temp was beside the target, hidden, with the real extension last
    assert os.path.dirname(temp) == str(tmp_path) and temp.endswith(".tmp.exr") and is_temp_path(temp)
    assert _listing(tmp_path) == []


def test_crash_while_overwriting_keeps_the_old_file(tmp_path, monkeypatch):
    final = tmp_path / "shot.0001.exr"
    old = _rgbaz()[..., :4]
    write_image(final, old, half=False)
    monkeypatch.setattr(images, "oiio", _CrashingOIIO())
    with pytest.raises(RuntimeError):
        write_image(final, old * 0 + 9.0, compression="piz")
    monkeypatch.undo()
    assert _listing(tmp_path) == ["shot.0001.exr"]
    np.testing.assert_array_equal(read_image(final).pixels, old)


def test_sigkill_mid_write_leaves_no_final_file(tmp_path):
    """A writer killed outright cannot clean up: the final name must still never appear."""
    final = tmp_path / "big.0001.exr"
    child = textwrap.dedent(f"""
        import numpy as np
        from focuspull.io.images import write_image
        pixels = np.random.default_rng(0).random((2048, 2048, 4), dtype=np.float32)
        print("ready", flush=True)
        write_image({str(final)!r}, pixels, half=False, compression="piz")  # OpenImageIO's own writer
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        temps = []
        while not temps and time.monotonic() < deadline and proc.poll() is None:
            temps = [n for n in os.listdir(tmp_path) if is_temp_path(n)]
            time.sleep(0.001)
        assert temps, "the writer finished or died before its temp file was seen"
        time.sleep(0.02)  # let it get some way into the pixels
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()
    left = [n for n in os.listdir(tmp_path) if is_temp_path(n)]
    assert left  # the half-written temp is the only trace...
    assert not is_complete_frame(tmp_path / left[0])  # ...and it is not a complete frame
    removed = remove_stale_temp_files(str(tmp_path))  # its writer is dead: cleaned up
    assert [os.path.basename(p) for p in removed] == left
    assert _listing(tmp_path) == []


def test_stale_temp_of_a_live_writer_is_kept(tmp_path):
    mine = tmp_path / f".a.exr.{host_token()}-{os.getpid()}-abcd.tmp.exr"
    mine.write_bytes(b"x")
    old = time.time() - 10 * STALE_TEMP_AGE_S
    os.utime(mine, (old, old))  # however long a live writer takes, its temp stays
    assert remove_stale_temp_files(str(tmp_path)) == []
    assert mine.exists()


def _exited_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_carry_the_host_and_only_this_hosts_dead_writers_are_stale(tmp_path):
    temp = os.path.basename(temp_path_for(str(tmp_path / "s.0001.exr")))
    assert temp.startswith(f".s.0001.exr.{host_token()}-{os.getpid()}-") and is_temp_path(temp)
    dead = _exited_pid()
    here_dead = tmp_path / f".a.0001.exr.{host_token()}-{dead}-abcd.tmp.exr"
    # The same pid on another host sharing the filesystem: its writer may be alive there.
    there_fresh = tmp_path / f".a.0002.exr.render-node-07-{dead}-abcd.tmp.exr"
    there_old = tmp_path / f".a.0003.exr.render-node-07-{dead}-abcd.tmp.exr"
    unknown_old = tmp_path / f".a.0004.exr.{dead}-abcd.tmp.exr"  # written before hosts were named
    for path in (here_dead, there_fresh, there_old, unknown_old):
        path.write_bytes(b"x")
    old = time.time() - STALE_TEMP_AGE_S - 60
    for path in (there_old, unknown_old):
        os.utime(path, (old, old))
    removed = sorted(os.path.basename(p) for p in remove_stale_temp_files(str(tmp_path)))
    assert removed == sorted(p.name for p in (here_dead, there_old, unknown_old))
    assert there_fresh.exists()
    assert STALE_TEMP_AGE_S <= 3600


def test_unwritable_output_directory_gets_a_directory_hint(tmp_path, monkeypatch):
    real_access = os.access
    locked = str(tmp_path / "locked")
    os.makedirs(locked)
    # Root ignores permission bits, so stand in for a read-only mount / foreign directory.
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == locked
                        else real_access(p, mode, **kw))
    with pytest.raises(InputError) as info:
        write_image(os.path.join(locked, "o.0001.exr"), _rgbaz()[..., :4])
    assert "not writable" in info.value.message
    assert info.value.hint == "check that the output directory exists, is writable and has free space"
    assert "channels" not in info.value.hint
    assert os.listdir(locked) == []


@pytest.mark.parametrize("compression, stored", [("dwaa:45", "dwaa"), ("zip:6", "zip"), ("htj2k", "htj2k256"),
                                                  ("HTJ2K32", "htj2k32"), ("piz", "piz")])
def test_compressions_with_levels_and_htj2k_write_what_they_say(tmp_path, compression, stored):
    pixels = _rgbaz()[..., :4]
    path = write_image(tmp_path / "c.exr", pixels, compression=compression, half=False)
    assert read_image(path).metadata["compression"] == stored  # OIIO writes unknown names as zip
    if stored != "dwaa":  # dwaa is lossy
        np.testing.assert_array_equal(read_image(path).pixels, pixels)
    with pytest.raises(InputError, match="zstd2"):
        write_image(tmp_path / "d.exr", pixels, compression="zstd2")


# --- the resume rule ------------------------------------------------------------------

def test_is_complete_frame(tmp_path):
    path = tmp_path / "out.0001.exr"
    assert not is_complete_frame(path)
    write_image(path, _rgbaz(), ["R", "G", "B", "A", "Z"])
    assert is_complete_frame(path)
    assert is_complete_frame(path, expect_shape=(H, W), expect_channels=["R", "G", "B", "A", "Z"])
    assert is_complete_frame(path, expect_shape=(H, W, 5))
    assert not is_complete_frame(path, expect_shape=(H, W + 1))
    assert not is_complete_frame(path, expect_shape=(H, W, 4))
    assert not is_complete_frame(path, expect_channels=["R", "G", "B", "A"])
    assert is_complete_frame(path, expect_channels=["Z", "R", "G", "B", "A"])  # by name, any order

    data = path.read_bytes()
    truncated = tmp_path / "out.0002.exr"
    truncated.write_bytes(data[: int(len(data) * 0.7)])  # header intact, pixels cut short
    assert oiio.ImageInput.open(str(truncated)) is not None  # it still opens...
    assert not is_complete_frame(truncated, expect_shape=(H, W))  # ...but is not complete
    (tmp_path / "junk.exr").write_bytes(b"\x76\x2f\x31\x01garbage")
    assert not is_complete_frame(tmp_path / "junk.exr")


def test_render_fingerprint_is_written_read_and_checked(tmp_path):
    from focuspull.io.metadata import FINGERPRINT_KEY

    path = write_image(tmp_path / "f.0001.exr", _rgbaz()[..., :4], metadata={FINGERPRINT_KEY: "0123abcd"})
    assert read_image(path).metadata[FINGERPRINT_KEY] == "0123abcd"
    assert is_complete_frame(path, expect_attributes={FINGERPRINT_KEY: "0123abcd"})
    assert not is_complete_frame(path, expect_attributes={FINGERPRINT_KEY: "ffff0000"})
    plain = write_image(tmp_path / "f.0002.exr", _rgbaz()[..., :4])
    assert FINGERPRINT_KEY not in read_image(plain).metadata
    assert not is_complete_frame(plain, expect_attributes={FINGERPRINT_KEY: "0123abcd"})


# -- zombies, reused pids and the age fallback (issue 13) -------------------------------------------
def _temp_of(tmp_path, pid, n, mtime=None):
    path = tmp_path / f".a.{n:04d}.exr.{host_token()}-{pid}-abcd.tmp.exr"
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_temp_of_a_zombie_writer_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, deliberately not reaped
        with open(f"/proc/{proc.pid}/stat") as fh:
            assert fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        zombie = _temp_of(tmp_path, proc.pid, 1)
        assert [os.path.basename(p) for p in remove_stale_temp_files(str(tmp_path))] == [zombie.name]
    finally:
        proc.wait()


def test_temp_whose_pid_now_belongs_to_a_younger_process_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = _temp_of(tmp_path, proc.pid, 1, mtime=time.time() - 600)  # written before it started
        live = _temp_of(tmp_path, proc.pid, 2)  # written now: its writer may be this process
        removed = [os.path.basename(p) for p in remove_stale_temp_files(str(tmp_path))]
        assert removed == [reused.name] and live.exists()
    finally:
        proc.kill()
        proc.wait()


def test_temp_of_a_live_old_process_is_stale_after_the_age_bound(tmp_path):
    parent = os.getppid()  # alive, and started before any temp below
    fresh = _temp_of(tmp_path, parent, 1)
    old = _temp_of(tmp_path, parent, 2, mtime=time.time() - STALE_TEMP_AGE_S - 60)
    removed = [os.path.basename(p) for p in remove_stale_temp_files(str(tmp_path))]
    assert removed == [old.name] and fresh.exists()
