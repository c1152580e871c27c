"""focuspull.io.preview: H.264 review movies through PyAV, written atomically."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest

from focuspull.errors import InputError, SequenceError
from focuspull.io.preview import PreviewWriter
from focuspull.io.transfer import from_linear


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
    expected = from_linear(levels, "srgb") * 255.0  # linear -> sRGB display values
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
    with PreviewWriter(str(path), transfer="rec709") as movie:
        movie.write(np.full((16, 16, 3), 50.0, np.float32))
        movie.write(np.full((16, 16, 3), -3.0, np.float32))
    frames, _, _ = _decode(path)
    assert frames[0].mean() > 250 and frames[1].mean() < 5


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
        PreviewWriter(str(tmp_path / "review.mp4"), transfer="log")
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
