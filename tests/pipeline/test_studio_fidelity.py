"""Studio plates through a whole render: multi-part EXRs come back whole (every channel,
part, attribute and the compression), overscan does not change the lens, anamorphic bokeh
is round after desqueeze, log and display-referred plates round-trip through OCIO."""
from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

from focuspull.errors import InputError
from focuspull.io.colour import colour_setup
from focuspull.io.images import read_image, write_image
from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob

ACESCG = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
W2C = tuple(float(v) for v in (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0.5, -2.0, 7.25, 1))
H, W = 40, 56


def _studio_plate(path, frame):
    """An ACEScg plate as a pipeline writes it: part 'rgba' (R,G,B,A half + Z float) and part
    'aovs' (two float cryptomatte IDs + a half normal), PIZ, with studio metadata."""
    rng = np.random.default_rng(frame)
    rgba = np.concatenate([rng.random((H, W, 3)) * 0.6, np.ones((H, W, 1))], axis=2).astype(np.float32)
    rgba[10, 40, :3] = 30.0  # a highlight
    z = np.full((H, W), 6.0, np.float32)
    z[:, :20] = 1.2
    ids = (rng.integers(1, 2**20, (H, W, 2)).astype(np.float32) * 1.0e-3).astype(np.float32)
    normal = rng.standard_normal((H, W, 1)).astype(np.float16).astype(np.float32)

    def spec(channels, formats, name):
        s = oiio.ImageSpec(W, H, len(channels), "half")
        s.channelnames = channels
        s.channelformats = formats
        s.attribute("compression", "piz")
        s.attribute("name", name)
        s.attribute("chromaticities", oiio.TypeDesc("float[8]"), ACESCG)
        s.attribute("Copyright", "(c) Example Studio 2026")
        s.attribute("ImageDescription", f"plate frame {frame}")
        s.attribute("nuke/node_hash", "5f2a9c")
        s.attribute("worldToCamera", oiio.TypeDesc("matrix"), W2C)
        return s

    first = spec(("R", "G", "B", "A", "Z"), ("half",) * 4 + ("float",), "rgba")
    second = spec(("crypto00.R", "crypto00.G", "N.x"), ("float", "float", "half"), "aovs")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), [first, second])
    assert out.write_image(np.concatenate([rgba, z[:, :, None]], axis=2))
    assert out.open(str(path), second, "AppendSubimage")
    # OpenEXR stores channels sorted by name: N.x, crypto00.R, crypto00.G.
    assert out.write_image(np.concatenate([ids, normal], axis=2))
    out.close()


def _parts(path):
    """[(name, {channel: (format, pixels)}, {attribute: value}, compression)] of every part."""
    inp = oiio.ImageInput.open(str(path))
    parts, index = [], 0
    while inp.seek_subimage(index, 0):
        spec = inp.spec()
        pixels = inp.read_image(index, 0, 0, spec.nchannels, "float")
        formats = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
        channels = {n: (formats[i], pixels[:, :, i]) for i, n in enumerate(spec.channelnames)}
        attrs = {a.name: a.value for a in spec.extra_attribs}
        parts.append((spec.get_string_attribute("name", ""), channels, attrs, attrs.get("compression")))
        index += 1
    inp.close()
    return parts


def test_multipart_studio_exr_comes_back_whole(tmp_path):
    os.makedirs(tmp_path / "in")
    for frame in (1, 2):
        _studio_plate(tmp_path / "in" / f"plate.{frame:04d}.exr", frame)
    job = RenderJob.from_dict({
        "input": {"pattern": str(tmp_path / "in" / "plate.####.exr")},
        "output": {"pattern": str(tmp_path / "out" / "dof.####.exr")},
        "lens": {"focal_length_mm": 100.0, "fstop": 1.4}, "focus": {"distance_m": 1.2}})
    assert run_job(job).rendered == [1, 2]
    for frame in (1, 2):
        source = _parts(tmp_path / "in" / f"plate.{frame:04d}.exr")
        result = _parts(tmp_path / "out" / f"dof.{frame:04d}.exr")
        assert [p[0] for p in result] == ["rgba", "aovs"]  # part by part, in order
        for (name, src_channels, src_attrs, src_comp), (_, out_channels, out_attrs, out_comp) in zip(source, result):
            assert sorted(out_channels) == sorted(src_channels), name  # channel by channel
            assert out_comp == src_comp == "piz", name  # input compression kept
            for key in ("Copyright", "ImageDescription", "nuke/node_hash", "name"):
                assert out_attrs[key] == src_attrs[key], (name, key)
            np.testing.assert_allclose(out_attrs["worldToCamera"], W2C)
            np.testing.assert_allclose(out_attrs["chromaticities"], ACESCG, atol=1e-4)
        assert result[0][2]["colorInteropID"] == "lin_ap1_scene"  # rendered in ACEScg, says so
        assert "focuspull:job" in result[0][2]
        # Data channels pass through bit for bit, in their own formats (IDs stay 32-bit float).
        for name, (fmt, values) in source[1][1].items():
            assert result[1][1][name][0] == fmt, name
            np.testing.assert_array_equal(result[1][1][name][1], values, err_msg=name)
        assert result[0][1]["Z"][0] == "float"
        np.testing.assert_array_equal(result[0][1]["Z"][1], source[0][1]["Z"][1])
        # The picture itself was rendered: the highlight spread into a bokeh ball.
        assert result[0][1]["R"][1][10, 40] < 0.5 * source[0][1]["R"][1][10, 40]
        assert result[0][1]["R"][0] == "half"


def test_compression_given_overrides_the_inputs(tmp_path):
    os.makedirs(tmp_path / "in")
    _studio_plate(tmp_path / "in" / "plate.0001.exr", 1)
    job = RenderJob.from_dict({
        "input": {"pattern": str(tmp_path / "in" / "plate.####.exr")},
        "output": {"pattern": str(tmp_path / "out" / "dof.####.exr"), "compression": "dwaa:45"},
        "lens": {"mode": "artistic", "size_px": 2.0}, "focus": {"distance_m": 6.0}})
    run_job(job)
    assert [p[3] for p in _parts(tmp_path / "out" / "dof.0001.exr")] == ["dwaa", "dwaa"]  # every part


# --- overscan ------------------------------------------------------------------------------
DW, DH, PAD = 64, 48, 32  # display window and overscan on each side


def _cg_world(highlight_outside=False):
    """A CG frame rendered with overscan: the display window plus PAD px each side.  The
    picture is uniform within 16 px of the display edges; the interesting bits are inside."""
    h, w = DH + 2 * PAD, DW + 2 * PAD
    rgb = np.full((h, w, 3), 0.2, np.float32)
    z = np.full((h, w), 8.0, np.float32)
    cy, cx = PAD + DH // 2, PAD + DW // 2
    rgb[cy - 8:cy + 8, cx - 20:cx - 8] = (0.9, 0.3, 0.1)
    z[cy - 8:cy + 8, cx - 20:cx - 8] = 1.5  # in focus
    rgb[cy - 2, cx + 12] = 50.0  # a far highlight: a bokeh ball
    if highlight_outside:
        rgb[cy, PAD - 3] = 400.0  # 3 px left of the display window, in the overscan
    return np.concatenate([rgb, z[:, :, None]], axis=2)


def _render_cg(tmp_path, name, world, overscan):
    meta = {"full_x": 0, "full_y": 0, "full_width": DW, "full_height": DH}
    if overscan:
        pixels, meta = world, {**meta, "x": -PAD, "y": -PAD}
    else:
        pixels = world[PAD:PAD + DH, PAD:PAD + DW]
    os.makedirs(tmp_path / name, exist_ok=True)
    write_image(tmp_path / name / "cg.0001.exr", pixels, ["R", "G", "B", "Z"], metadata=meta, half=False)
    job = RenderJob.from_dict({
        "input": {"pattern": str(tmp_path / name / "cg.####.exr")},
        "output": {"pattern": str(tmp_path / name / "out.####.exr"), "half": False},
        "lens": {"focal_length_mm": 85.0, "fstop": 1.4, "sensor_width_mm": 16.0, "cg_camera": True},
        "focus": {"distance_m": 1.5}})
    run_job(job)
    return read_image(tmp_path / name / "out.0001.exr")


def test_overscan_does_not_change_the_picture_inside_the_display_window(tmp_path):
    world = _cg_world()
    plain = _render_cg(tmp_path, "plain", world, overscan=False)
    over = _render_cg(tmp_path, "over", world, overscan=True)
    assert over.metadata["x"] == -PAD and over.metadata["full_width"] == DW  # windows kept
    inside = over.pixels[PAD:PAD + DH, PAD:PAD + DW, :3]
    # Bokeh sized from the film back (display window), not the 128 px of stored pixels.
    np.testing.assert_allclose(inside, plain.pixels[:, :, :3], rtol=1e-4, atol=1e-5)
    ball = plain.pixels[:, :, 0] > 0.25  # the highlight's bokeh over the 0.2 floor
    ball[:, :DW // 2] = False
    assert 60 < ball.sum() < 200  # ~6 px radius: a k_px from 128 px would give ~4x the area


def test_overscan_pixels_feed_bokeh_at_the_frame_edge(tmp_path):
    world = _cg_world(highlight_outside=True)
    plain = _render_cg(tmp_path, "plain", world, overscan=False)
    over = _render_cg(tmp_path, "over", world, overscan=True)
    edge_over = over.pixels[PAD + DH // 2 - 2:PAD + DH // 2 + 3, PAD:PAD + 2, 0]
    edge_plain = plain.pixels[DH // 2 - 2:DH // 2 + 3, :2, 0]
    assert edge_over.mean() > edge_plain.mean() + 0.5  # light from beyond the frame edge


# --- anamorphic ----------------------------------------------------------------------------
def _spot_shape(pixel_aspect, aspect, tmp_path):
    """Width / height of a bokeh ball as seen after desqueeze (second moments)."""
    h, w = 64, 64
    rgb = np.full((h, w, 3), 0.0, np.float32)
    rgb[32, 32] = 1000.0
    z = np.full((h, w, 1), 1.0, np.float32)  # disparity 1 with far=0 math: blur = size
    name = f"par{pixel_aspect}_aspect{aspect}"
    os.makedirs(tmp_path / name)
    write_image(tmp_path / name / "a.0001.exr", np.concatenate([rgb, z], axis=2), ["R", "G", "B", "Z"],
                metadata={"pixelAspectRatio": pixel_aspect}, half=False)
    job = RenderJob.from_dict({
        "input": {"pattern": str(tmp_path / name / "a.####.exr")},
        "output": {"pattern": str(tmp_path / name / "o.####.exr"), "half": False},
        "depth": {"depth_math": "far = 0"},
        "lens": {"mode": "artistic", "k": 12.0}, "focus": {"mode": "disparity", "disparity": 0.0},
        "aperture": {"aspect": aspect}})
    run_job(job)
    out = read_image(tmp_path / name / "o.0001.exr")
    assert out.metadata["pixelAspectRatio"] == pytest.approx(pixel_aspect)
    spot = out.pixels[:, :, 0]
    ys, xs = np.mgrid[:h, :w]
    total = spot.sum()
    sx = np.sqrt((spot * (xs - (spot * xs).sum() / total) ** 2).sum() / total) * pixel_aspect
    sy = np.sqrt((spot * (ys - (spot * ys).sum() / total) ** 2).sum() / total)
    return sx / sy, spot


def test_anamorphic_bokeh_is_round_after_desqueeze(tmp_path):
    ratio, spot = _spot_shape(2.0, 1.0, tmp_path)
    assert ratio == pytest.approx(1.0, abs=0.06)
    columns = np.nonzero(spot.max(axis=0) > 0.02 * spot.max())[0]
    rows = np.nonzero(spot.max(axis=1) > 0.02 * spot.max())[0]
    assert len(rows) == pytest.approx(2 * len(columns), abs=2)  # half as wide as tall in stored pixels
    assert _spot_shape(1.0, 1.0, tmp_path)[0] == pytest.approx(1.0, abs=0.06)
    # ZDefocus-style aspect: 0.5 = the tall oval of a 2x anamorphic lens, after desqueeze.
    assert _spot_shape(2.0, 0.5, tmp_path)[0] == pytest.approx(0.5, abs=0.05)


# --- conventions: focus origin, filter image, animated aperture, log plates -----------------
def _inband_job(**sections):
    spec = {"lens": {"mode": "artistic", "k": 10.0}, "depth": {"depth_math": "far=0"},
            "focus": {"mode": "disparity", "disparity": 0.5}}
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value}
    return RenderJob.from_dict(spec)


def _halves(frames=(1,)):
    """Top half near (disparity 0.5), bottom half far (0.1); textured; one highlight per half."""
    rng = np.random.default_rng(7)
    rgb = (rng.random((32, 48, 3)) * 0.5).astype(np.float32)
    rgb[8, 24] = rgb[24, 24] = 80.0
    disparity = np.full((32, 48), 0.1, np.float32)
    disparity[:16] = 0.5
    return {f: {"rgba": rgb, "depth": disparity} for f in frames}


def test_focus_point_origin_bottom_left_is_nukes(tmp_path):
    frames = _halves()
    top_left = run_job(_inband_job(focus={"mode": "point", "point_x": 20.0, "point_y": 5.0}), inband=frames)
    nuke = run_job(_inband_job(focus={"mode": "point", "point_x": 20.5, "point_y": 32 - 5.5,
                                      "origin": "bottom-left"}), inband=frames)
    np.testing.assert_array_equal(top_left.frames[1], nuke.frames[1])  # the same pixel, said two ways
    flipped = run_job(_inband_job(focus={"mode": "point", "point_x": 20.0, "point_y": 5.0,
                                         "origin": "bottom-left"}), inband=frames)
    assert not np.allclose(flipped.frames[1], top_left.frames[1])  # y up: now the far half is sharp
    # top-left focus keeps the near (top) half sharp; bottom-left y=5 keeps the far (bottom) half
    assert np.abs(top_left.frames[1][:12] - frames[1]["rgba"][:12]).max() < 1e-5
    assert np.abs(flipped.frames[1][20:] - frames[1]["rgba"][20:]).max() < 1e-5


def test_filter_image_shapes_the_bokeh(tmp_path):
    square = np.zeros((16, 16, 3), np.float32)
    square[2:14, 2:14] = 1.0
    write_image(tmp_path / "square.png", square, transfer="linear")
    frames = _halves()
    frames[1]["rgba"] = np.zeros_like(frames[1]["rgba"])
    frames[1]["rgba"][24, 24] = 80.0  # one far highlight on black
    disc = run_job(_inband_job(focus={"disparity": 0.5}), inband=frames).frames[1]
    shaped = run_job(_inband_job(focus={"disparity": 0.5}, aperture={"filter_image": str(tmp_path / "square.png")}),
                     inband=frames).frames[1]
    # The far highlight at (24, 24), CoC 4 px: a square lights its corners, a disc does not.
    # Square of side ~7 px vs disc of radius 4: the square reaches further along the diagonal,
    # the disc further along the axis; the square is flat-topped over its whole inside.
    assert shaped[27, 27, 0] > 1.5 * disc[27, 27, 0]
    assert disc[28, 24, 0] > 0.5 and shaped[28, 24, 0] < 0.05
    assert shaped[26, 26, 0] == pytest.approx(shaped[24, 24, 0], rel=1e-3)


def test_blades_and_rotation_are_keyframed_and_blade_counts_hold(tmp_path):
    frames = _halves((1, 2, 3))
    job = _inband_job(focus={"disparity": 0.5}, aperture={"blades": "1:0,3:5", "rotation_deg": "1:0,3:36"})
    out = run_job(job, inband=frames).frames
    still = run_job(_inband_job(focus={"disparity": 0.5}), inband=_halves((1,))).frames[1]
    np.testing.assert_array_equal(out[1], still)  # a disc on frame 1
    pentagon = run_job(_inband_job(focus={"disparity": 0.5}, aperture={"blades": 5, "rotation_deg": 36}),
                       inband=_halves((1,))).frames[1]
    np.testing.assert_allclose(out[3], pentagon, atol=1e-6)  # a pentagon turned 36 degrees on frame 3
    assert not np.allclose(out[3], out[1])
    disc_rotated = run_job(_inband_job(focus={"disparity": 0.5}, aperture={"rotation_deg": 18}),
                           inband=_halves((1,))).frames[1]
    np.testing.assert_allclose(out[2], disc_rotated, atol=1e-6)  # frame 2: still a disc (held), rotation 18


def test_dof_keeps_a_range_sharp(tmp_path):
    frames = _halves()
    narrow = run_job(_inband_job(focus={"disparity": 0.5}), inband=frames).frames[1]
    wide = run_job(_inband_job(focus={"disparity": 0.5, "dof": 0.9}), inband=frames).frames[1]
    assert np.abs(narrow[24:] - frames[1]["rgba"][24:]).max() > 1.0  # the far half blurs
    np.testing.assert_allclose(wide, frames[1]["rgba"], atol=1e-5)  # 0.05 .. 0.95 all in focus


@pytest.mark.parametrize("space", ["logc3", "ACEScct"])
def test_log_plate_is_rendered_in_linear_light_and_comes_back_in_its_log_encoding(tmp_path, space):
    setup = colour_setup()
    rng = np.random.default_rng(11)
    linear = (rng.random((32, 48, 3)) * 0.4 + 0.02).astype(np.float32)
    linear[24, 24] = 60.0  # a highlight only a log encoding can hold in 16 bits
    codes = setup.from_working(linear, space)
    disparity = np.full((32, 48), 0.1, np.float32)
    disparity[:16] = 0.5
    os.makedirs(tmp_path / "in")
    write_image(tmp_path / "in" / "plate.0001.tif", codes, bits=16, transfer="linear")
    write_image(tmp_path / "in" / "depth.0001.exr", disparity, ["Z"])
    base = {"input": {"pattern": str(tmp_path / "in" / "plate.####.tif"), "transfer": space},
            "depth": {"kind": "sequence", "pattern": str(tmp_path / "in" / "depth.####.exr"), "depth_math": "far=0"},
            "lens": {"mode": "artistic", "k": 10.0}, "focus": {"mode": "disparity", "disparity": 0.5}}
    run_job(RenderJob.from_dict({**base, "output": {"pattern": str(tmp_path / "tif" / "o.####.tif")}}))
    run_job(RenderJob.from_dict({**base, "output": {"pattern": str(tmp_path / "exr" / "o.####.exr"),
                                                     "half": False}}))
    stored = read_image(tmp_path / "in" / "plate.0001.tif", transfer="linear").pixels
    back = read_image(tmp_path / "tif" / "o.0001.tif", transfer="linear").pixels
    np.testing.assert_allclose(back[:12], stored[:12], atol=3.0 / 65535)  # sharp half: the same codes
    exr = read_image(tmp_path / "exr" / "o.0001.exr")
    np.testing.assert_allclose(exr.pixels[:12, :, :3], setup.to_working(stored, space)[:12], rtol=1e-3, atol=1e-5)
    # The far highlight was blurred as light (60 spread over a disc), not as log code values.
    ball = exr.pixels[20:29, 20:29, 0]
    assert ball.max() < 5.0 and ball.sum() > 40.0


def test_channels_named_are_rendered_like_the_picture_and_the_rest_pass_through(tmp_path):
    rng = np.random.default_rng(5)
    rgb = (rng.random((32, 48, 3)) * 0.5).astype(np.float32)
    rgb[24, 24] = 50.0
    z = np.full((32, 48, 1), 8.0, np.float32)
    z[:16] = 1.5
    ids = rng.integers(1, 999, (32, 48, 1)).astype(np.float32)
    alpha = np.ones((32, 48, 1), np.float32)
    os.makedirs(tmp_path / "in")
    write_image(tmp_path / "in" / "p.0001.exr", np.concatenate([rgb, alpha, z, rgb, ids], axis=2),
                ["R", "G", "B", "A", "Z", "diffuse.R", "diffuse.G", "diffuse.B", "id"], half=False,
                formats={"id": "float"})
    base = {"input": {"pattern": str(tmp_path / "in" / "p.####.exr")},
            "lens": {"focal_length_mm": 100.0, "fstop": 1.4}, "focus": {"distance_m": 1.5}}
    run_job(RenderJob.from_dict({**base, "output": {"pattern": str(tmp_path / "a" / "o.####.exr"), "half": False,
                                                     "channels": "diffuse"}}))
    run_job(RenderJob.from_dict({**base, "output": {"pattern": str(tmp_path / "b" / "o.####.exr"), "half": False}}))
    rendered, passed = read_image(tmp_path / "a" / "o.0001.exr"), read_image(tmp_path / "b" / "o.0001.exr")
    for c in "RGB":
        np.testing.assert_allclose(rendered.channel(f"diffuse.{c}"), rendered.channel(c), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(passed.channel(f"diffuse.{c}"), rgb[:, :, "RGB".index(c)])
    assert rendered.channel("diffuse.R")[24, 24] < 25.0  # blurred, not passed through
    np.testing.assert_array_equal(rendered.channel("id"), ids[:, :, 0])  # IDs are never blurred
    with pytest.raises(InputError, match="specular") as err:
        run_job(RenderJob.from_dict({**base, "output": {"pattern": str(tmp_path / "c" / "o.####.exr"),
                                                         "channels": "specular"}}))
    assert err.value.field == "output.channels" and "diffuse.R" in err.value.message
