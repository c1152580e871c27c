"""focuspull.io.preview: H.264 review movies through PyAV, written atomically."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest

from focuspull.errors import InputError, SequenceError
from focuspull.io.preview import PreviewWriter
from focuspull.io.colour import colour_setup


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, stream.average_rate, container.format.name


def test_ten_frames_round_trip(tmp_path):
    path = tmp_path / "review.mp4"
    levels = np.linspace(0.02, 0.8, 10, dtype=np.float32)
    with PreviewWriter(str(path), fps=24.0) as movie:
        for level in levels:
            movie.write(np.full((48, 64, 3), level, np.float32))
    frames, rate, _ = _decode(path)
    assert len(frames) == 10
    assert frames[0].shape == (48, 64, 3)
    assert rate == 24
    means = np.array([f.mean() for f in frames])
    # linear -> the config's default display and view (ACES 2.0 SDR on sRGB)
    expected = colour_setup().to_display(levels[:, None].repeat(3, axis=1))[:, 0] * 255.0
    np.testing.assert_allclose(means, expected, atol=3.0)
    assert os.listdir(tmp_path) == ["review.mp4"]


def test_odd_sizes_are_padded_and_ntsc_rate_kept(tmp_path):
    path = tmp_path / "odd.mov"
    frame = np.zeros((47, 63, 4), np.float32)
    frame[:, :, 0] = 1.0   # red, including the last row/column that gets repeated
    with PreviewWriter(str(path), fps=23.976) as movie:
        for _ in range(3):
            movie.write(frame)
    frames, rate, container_format = _decode(path)
    assert "mov" in container_format
    assert rate == pytest.approx(24000 / 1001)
    assert frames[0].shape == (48, 64, 3)
    assert frames[0][-1, -1, 0] > 200 and frames[0][-1, -1, 1] < 40  # padding repeats the picture


def test_highlights_are_clamped(tmp_path):
    path = tmp_path / "hot.mp4"
    with PreviewWriter(str(path), display="Rec.1886 Rec.709 - Display", view="Video (colorimetric)") as movie:
        movie.write(np.full((16, 16, 3), 50.0, np.float32))
        movie.write(np.full((16, 16, 3), -3.0, np.float32))
    frames, _, _ = _decode(path)
    assert frames[0].mean() > 250 and frames[1].mean() < 5


def test_hdr_highlights_are_tone_mapped_by_the_view_not_clipped(tmp_path):
    # A horizontal ramp of light from 0.05 to 200 (7+ stops above diffuse white).
    ramp = np.geomspace(0.05, 200.0, 256, dtype=np.float32)
    frame = np.repeat(ramp[None, :, None], 64, axis=0).repeat(3, axis=2)
    frame[:, :, 2] *= 0.5  # warm, so the tone map's hue handling shows too
    with PreviewWriter(str(tmp_path / "hdr.mp4")) as movie:
        movie.write(frame)
    shown = _decode(tmp_path / "hdr.mp4")[0][0].astype(np.float32)
    luma = shown[32].mean(axis=1)
    above_white = ramp > 1.0
    columns = np.nonzero(above_white)[0]
    # Clipping would flatten everything above 1.0 to 255: the view keeps a gradient there.
    assert luma[columns[-1]] - luma[columns[0]] > 25
    assert (shown[32, columns] >= 254.5).all(axis=1).mean() < 0.2
    assert luma[-1] > luma[columns[len(columns) // 2]] > luma[columns[0]]


def test_exception_leaves_no_movie_and_no_temp(tmp_path):
    path = tmp_path / "review.mp4"
    with pytest.raises(RuntimeError, match="render failed"):
        with PreviewWriter(str(path)) as movie:
            movie.write(np.full((16, 16, 3), 0.5, np.float32))
            raise RuntimeError("render failed")
    assert os.listdir(tmp_path) == []


def test_size_change_and_bad_inputs(tmp_path):
    with pytest.raises(InputError):
        PreviewWriter(str(tmp_path / "review.avi"))
    with pytest.raises(InputError):
        PreviewWriter(str(tmp_path / "review.mp4"), display="log")
    with pytest.raises(InputError):
        with PreviewWriter(str(tmp_path / "a.mp4")) as movie:
            movie.write(np.zeros((16, 16, 3), np.float32))
            movie.write(np.zeros((18, 16, 3), np.float32))
    with pytest.raises(InputError):
        with PreviewWriter(str(tmp_path / "b.mp4")) as movie:
            movie.write(np.zeros((16, 16), np.float32))
    with PreviewWriter(str(tmp_path / "c.mp4")) as empty:
        pass
    assert empty.close() is False  # no frames: no movie, and close says so without raising
    assert os.listdir(tmp_path) == []


def test_close_and_abort(tmp_path):
    movie = PreviewWriter(str(tmp_path / "a.mp4"))
    movie.write(np.zeros((16, 16, 3), np.float32))
    assert movie.close() is True and movie.close() is True  # idempotent
    assert os.listdir(tmp_path) == ["a.mp4"]
    with pytest.raises(SequenceError):
        movie.write(np.zeros((16, 16, 3), np.float32))
    dropped = PreviewWriter(str(tmp_path / "b.mp4"))
    dropped.write(np.zeros((16, 16, 3), np.float32))
    dropped.abort()
    assert dropped.close() is False
    assert os.listdir(tmp_path) == ["a.mp4"]
