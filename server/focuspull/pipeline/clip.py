"""Where a job's frames come from: image sequences on disk, or frames sent in-band.

Both sources answer the same questions for the pipeline -- the clip's frames, each
frame's colour, depth, metadata and extra channels -- and check everything they can
before the first frame renders.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Mapping

import numpy as np

from focuspull.errors import InputError, SequenceError
from focuspull.io.colour import Colour, colour_setup, space_from_header
from focuspull.io.frames import SequencePattern, format_frame_ranges, sequence_range
from focuspull.io.images import read_image
from focuspull.io.preflight import check_depth_values, preflight, read_channel
from focuspull.io.transfer import default_transfer_for
from focuspull.pipeline.plan import frames_read
from focuspull.spec.job import RenderJob


def job_colour(job: RenderJob) -> Colour:
    """The OCIO setup of a job: config, working space, display and view (defaults: $OCIO or
    the built-in ACES config, its scene_linear role, its default display and view)."""
    c = job.colour
    return colour_setup(c.config, c.working_space, c.display, c.view)


class DiskClip:
    """Frames of a sequence on disk; keeps the few most recent reads.

    Thread-safe: :meth:`prefetch` decodes a frame on a reader thread (a bounded read-ahead:
    :class:`~focuspull.pipeline.overlap.ReadAhead`) while the current one renders; a read
    already under way is waited for, never repeated.
    """

    def __init__(self, job: RenderJob) -> None:
        self.job = job
        self.pattern = SequencePattern(job.input.pattern)
        self.depth_pattern = (SequencePattern(job.depth.pattern)
                              if job.depth.kind == "sequence" else None)
        on_disk = self.pattern.frames_on_disk()
        if self.depth_pattern is not None and not self.depth_pattern.is_single_image:
            # A depth *sequence* limits the clip to frames that have both; a single depth
            # still serves every frame (it is not "frame 1" of anything), and so does a
            # single still plate for every frame of a depth sequence.
            depth_frames = self.depth_pattern.frames_on_disk()
            if self.pattern.is_single_image:
                on_disk = depth_frames if on_disk else []
            else:
                on_disk = [f for f in on_disk if f in set(depth_frames)]
        # No frame range given: the sequence's whole range, so a frame missing in the middle
        # is named by preflight instead of silently skipped.
        self.frames = list(job.frames) or sequence_range(on_disk)
        if not self.frames:
            raise SequenceError(f"no frames of {job.input.pattern} on disk",
                                "check the input pattern (e.g. shot.####.exr) and its directory")
        # A single still counts as frame 1 only: render any frame of it.  A requested frame
        # that is missing joins the clip too, so preflight names it.
        self.clip_frames = sorted(set(on_disk) | set(self.frames))
        # Every frame any stage reads, not only the requested ones: the temporal stages
        # look beyond --frames, and a bad neighbour must fail now, not on frame 87.
        self.frames_read = frames_read(job, self.clip_frames, self.frames)
        matte = [job.focus.matte_channel] if job.focus.mode == "matte" else []
        info = preflight(self.pattern, self.frames_read,
                         depth_channel=job.depth.channel if job.depth.kind != "model" else None,
                         depth_pattern=self.depth_pattern,
                         depth_required=job.depth.kind != "model", required_channels=matte)
        self.ocio = job_colour(job)
        # The input's colour space: as told, else as its header states, else by file type.
        self.transfer = job.input.transfer or space_from_header(info.metadata_of_first, self.ocio) \
            or default_transfer_for(self.pattern.path(self.frames[0]), info.metadata_of_first.get("format"))
        self.ocio.resolve(self.transfer)  # an unknown space fails now, not on the first frame
        self.depth_channel = info.depth_channel
        self.height, self.width = info.height, info.width
        self.channel_names = list(info.channel_names)
        # Reads by (pattern, frame), each a Future: done, or being read by another thread.
        # Colour and depth of a frame come from one read; 4K is big: the frame being
        # rendered, the one read ahead and one before (a separate depth sequence: x 2).
        self._cache: dict[tuple, Future] = {}
        self._cache_size = 3 if self.depth_pattern is None else 5
        self._lock = threading.Lock()
        self._rgba: dict[int, tuple] = {}  # frame -> (the Image, its rgba())

    def _read(self, pattern: SequencePattern, frame: int):
        key = (str(pattern), frame)
        with self._lock:
            pending = self._cache.get(key)
            if pending is None:
                pending = self._cache[key] = Future()
                while len(self._cache) > self._cache_size:
                    self._cache.pop(next(iter(self._cache)))
                mine = True
            else:
                mine = False
        if not mine:
            return pending.result()  # read (or being read) by another thread: wait for it
        try:
            image = read_image(pattern.path(frame), transfer=self.transfer
                               if pattern is self.pattern else "linear", colour=self.ocio)
        except BaseException as exc:
            with self._lock:  # not kept: the next reader tries again and gets its own error
                if self._cache.get(key) is pending:
                    del self._cache[key]
            pending.set_exception(exc)
            raise
        pending.set_result(image)
        return image

    def prefetch(self, frame: int) -> None:
        """Decode ``frame`` (colour and depth) into the cache; errors are left for the
        render of that frame to meet (and report) in its own read."""
        try:
            self.colour(frame)
            if self.depth_pattern is not None:
                self._read(self.depth_pattern, frame)
        except Exception:  # noqa: BLE001 - the frame's own read raises it, naming the frame
            pass

    def image(self, frame: int):
        """The whole first part of the frame as read (:class:`~focuspull.io.images.Image`)."""
        return self._read(self.pattern, frame)

    def other_parts(self, frame: int) -> list:
        """Parts 2.. of a multi-part EXR frame, as stored (data, never colour-converted)."""
        count = int(self.image(frame).metadata.get("subimages", 1))
        path = self.pattern.path(frame)
        return [read_image(path, transfer="linear", subimage=i) for i in range(1, count)]

    def check_depth(self, check, cancelled=None) -> None:
        """``check(frame, depth)`` on every frame the render reads, reading only the depth
        channel (truncated files fail here too), before the first frame renders."""
        pattern = self.depth_pattern if self.depth_pattern is not None else self.pattern
        check_depth_values(lambda f: read_channel(pattern.path(f), self.depth_channel), self.frames_read, check,
                           cancelled)

    def colour(self, frame: int) -> np.ndarray:
        """``H x W x 3|4`` of ``frame``: one array shared by every caller (the read-ahead
        makes it while the previous frame renders), so never modify it in place."""
        image = self._read(self.pattern, frame)
        with self._lock:
            cached = self._rgba.get(frame)
        if cached is not None and cached[0] is image:
            return cached[1]
        pixels = image.rgba()
        with self._lock:
            cached = self._rgba.get(frame)
            if cached is not None and cached[0] is image:  # another thread made it meanwhile
                return cached[1]
            self._rgba[frame] = (image, pixels)
            while len(self._rgba) > 2:
                self._rgba.pop(next(iter(self._rgba)))
        return pixels

    def metadata(self, frame: int) -> dict:
        return self._read(self.pattern, frame).metadata

    def depth(self, frame: int) -> np.ndarray:
        if self.depth_pattern is not None:
            return self._read(self.depth_pattern, frame).channel(self.depth_channel)
        return self._read(self.pattern, frame).channel(self.depth_channel)

    def channel(self, frame: int, name: str) -> np.ndarray:
        return self._read(self.pattern, frame).channel(name)

    @property
    def colour_channels(self) -> list[str]:
        """The colour channels a render of this clip writes (RGB, plus A when there is one)."""
        return ["R", "G", "B", "A"][:4 if "A" in self.channel_names else 3]

    def files_read(self) -> dict[str, str]:
        """``{real path: "image" | "depth"}`` of every file this clip reads (outputs never
        go there)."""
        reads: dict[str, str] = {}
        for f in self.clip_frames:
            reads.setdefault(os.path.realpath(self.pattern.path(f)), "image")
            if self.depth_pattern is not None:
                reads.setdefault(os.path.realpath(self.depth_pattern.path(f)), "depth")
        return reads


class InbandClip:
    """Frames handed over in memory: ``{frame: {"rgba": HxWxC, "depth": HxW}}``."""

    def __init__(self, job: RenderJob, inband: Mapping) -> None:
        if not isinstance(inband, Mapping) or not inband:
            raise InputError("in-band render without frames", "send at least one frame with the job")
        self.data = {int(f): v for f, v in inband.items()}
        self.clip_frames = sorted(self.data)
        self.frames = list(job.frames) or list(self.clip_frames)
        missing = [f for f in self.frames if f not in self.data]
        if missing:
            raise SequenceError(f"frames {format_frame_ranges(missing)} were not sent with the job",
                                "send every frame listed in the job's frame range")
        shape = None
        for f in self.clip_frames:
            entry = self.data[f]
            if not isinstance(entry, Mapping) or "rgba" not in entry:
                raise InputError(f"in-band frame {f} has no 'rgba' array", "send {'rgba': HxWxC, 'depth': HxW}")
            rgba = np.asarray(entry["rgba"])
            if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
                raise InputError(f"in-band frame {f}: rgba must be H x W x 3 or 4, got {rgba.shape}",
                                 "send RGB or premultiplied RGBA float32")
            if shape is None:
                shape = rgba.shape
            elif rgba.shape != shape:
                raise SequenceError(f"in-band frame {f} is {rgba.shape}, frame {self.clip_frames[0]} is {shape}",
                                    "send frames of one size")
            if job.depth.kind != "model":
                depth = entry.get("depth")
                if depth is None or np.asarray(depth).shape != shape[:2]:
                    raise InputError(f"in-band frame {f}: depth must be H x W = {shape[:2]}, got "
                                     f"{None if depth is None else np.asarray(depth).shape}",
                                     "send one depth plane per frame, the size of the image")
        self.height, self.width = shape[0], shape[1]
        self.channel_names = ["R", "G", "B", "A"][:shape[2]]
        self.depth_channel = None
        self.ocio = job_colour(job)
        self.transfer = job.input.transfer or "linear"  # arrays at module boundaries are linear
        self.ocio.resolve(self.transfer)

    def check_depth(self, check, cancelled=None) -> None:
        """``check(frame, depth)`` on every frame sent, before the first frame renders."""
        check_depth_values(self.depth, self.clip_frames, check, cancelled)

    def prefetch(self, frame: int) -> None:  # noqa: ARG002 - in memory already
        return None

    def colour(self, frame: int) -> np.ndarray:
        return np.asarray(self.data[frame]["rgba"], dtype=np.float32)

    def metadata(self, frame: int) -> dict:  # noqa: ARG002 - same interface as DiskClip
        return {}

    def depth(self, frame: int) -> np.ndarray:
        return np.asarray(self.data[frame]["depth"], dtype=np.float32)

    def channel(self, frame: int, name: str) -> np.ndarray:
        raise InputError(f"in-band frames carry no channel {name!r}", "focus in-band renders with a point")

    @property
    def colour_channels(self) -> list[str]:
        return list(self.channel_names)

    def files_read(self) -> dict[str, str]:
        return {}  # nothing on disk: no output can overwrite it
