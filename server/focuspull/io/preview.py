"""H.264 review movies (MP4, or MOV by extension) from linear frames, via PyAV.

A preview is for eyes, not for finishing: 8-bit yuv420p, BT.709 matrix, limited
range, rendered through an OCIO display and view (by default the config's: the ACES 2.0
SDR tone map in the built-in config), so HDR highlights roll off instead of clipping.
Like every focuspull output it appears atomically: frames go to a temp file
beside the target, renamed at a clean close; on an exception inside the ``with``
block (or after ``abort()``) nothing is left, and with no frames there is no file.
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction

import numpy as np

from focuspull.errors import InputError, SequenceError
from focuspull.io.atomic import fsync_path, temp_path_for
from focuspull.io.metadata import fps_rational

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
# H.264 colour tags (ITU-T H.273) by display: transfer sRGB (13), BT.709/1886 (1), gamma 2.2 (4).
_TRC_BY_DISPLAY = (("srgb", 13), ("1886", 1), ("709", 1), ("gamma 2.2", 4))


def _trc_tag(display: str) -> int:
    lowered = display.lower()
    return next((tag for key, tag in _TRC_BY_DISPLAY if key in lowered), 2)  # 2 = unspecified


class PreviewWriter:
    """Write a review movie one linear frame at a time.

    Usage::

        with PreviewWriter("review.mp4", fps=24.0) as movie:
            for frame in frames:              # H x W x 3 (or 4) float32, linear
                movie.write(frame)

    Odd widths/heights are padded by one pixel (the last row/column repeated),
    since yuv420p needs even sizes.  Every frame must have the first frame's size.
    """

    def __init__(self, path: str, fps: float = 24.0, *, colour=None, display: str | None = None,
                 view: str | None = None, crf: int = 18) -> None:
        self.path = os.fspath(path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in _CONTAINERS:
            raise InputError(f"cannot write a preview movie to {self.path}",
                             f"use one of: {', '.join(_CONTAINERS)} (e.g. review.mp4)")
        self._format = _CONTAINERS[ext]
        num, den = fps_rational(fps)
        self.fps = Fraction(num, den)
        from focuspull.io.colour import colour_setup  # noqa: PLC0415

        base = colour or colour_setup()
        # The display and view of the movie: given here, else those of the colour setup.
        self.colour = colour_setup(base.config, base.working, display or base.display,
                                   view if view is not None else (None if display else base.view))
        self.crf = int(crf)
        self.frames_written = 0
        self._tmp: str | None = None
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None  # (height, width) of the input frames
        self._closed = False
        self._moved = False  # True once the finished movie is at self.path

    def __enter__(self) -> "PreviewWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self, height: int, width: int) -> None:
        import av  # PyAV is only needed once a preview is actually written

        self._tmp = temp_path_for(self.path)
        self._container = av.open(self._tmp, mode="w", format=self._format)
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf)}
        context = stream.codec_context
        context.colorspace = 1  # BT.709 matrix
        context.color_primaries = 1
        context.color_trc = _trc_tag(self.colour.display)
        context.color_range = 1  # limited ("MPEG") range, what players expect
        self._stream = stream
        self._size = (height, width)

    def write(self, frame_linear) -> None:
        """Encode one ``H x W x 3`` (or ``x 4``, alpha ignored: premultiplied over black) frame."""
        if self._closed:
            raise SequenceError(f"the preview {self.path} is already closed", "open a new PreviewWriter")
        frame = np.asarray(frame_linear, dtype=np.float32)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise InputError(f"a preview frame must be H x W x 3 or 4, got shape {frame.shape}",
                             "pass the RGB(A) render")
        height, width = frame.shape[:2]
        if self._container is None:
            self._start(height, width)
        elif (height, width) != self._size:
            raise InputError(f"preview frame {self.frames_written} is {width}x{height} but the movie is "
                             f"{self._size[1]}x{self._size[0]}", "write frames of one size to a preview")
        import av

        display = self.colour.to_display(frame[:, :, :3])
        rgb8 = np.round(display * 255.0).astype(np.uint8)
        # Pad odd sizes by repeating the edge: nothing of the picture is lost.
        rgb8 = np.pad(rgb8, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb8), format="rgb24")
        video_frame = video_frame.reformat(format="yuv420p", dst_colorspace="ITU709")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> bool:
        """Flush the encoder and move the finished movie into place.

        Returns True when a movie was written; False when no frame ever was (then
        there is no file: an empty movie is not a preview).  Closing twice is fine.
        It never raises for "no frames", so a caller may close in an exception
        handler without masking the original error.
        """
        if self._closed:
            return self._moved
        if self._container is None:
            self._closed = True
            return False
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            fsync_path(self._tmp)
            os.replace(self._tmp, self.path)
            self._closed = self._moved = True
        except BaseException:
            self.abort()
            raise
        return True

    def abort(self) -> None:
        """Drop the movie in progress: no file at ``path``, no temp left."""
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(self._tmp)


__all__ = ["PreviewWriter"]
