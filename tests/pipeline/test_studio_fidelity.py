"""Studio plates through a whole render: multi-part EXRs come back whole (every channel,
part, attribute and the compression), overscan does not change the lens, anamorphic bokeh
is round after desqueeze, log and display-referred plates round-trip through OCIO."""
from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

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
