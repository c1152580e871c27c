"""The video driver: run one :class:`~focuspull.job.RenderJob` over its frame range.

Order of work (see docs/contracts.md):

1. **Preflight** -- every check that can fail is done before the first frame renders:
   sequence headers (missing frames, sizes, depth channel), lens values at every frame,
   the depth model, output collisions (refuse / resume / overwrite).
2. **Per frame** -- read image and depth; depth -> disparity (metric via
   :func:`focuspull.lens.disparity_from_depth`, or a model's relative disparity
   normalised once per *clip*); optional temporal stabilisation; focus disparity
   (distance, point, tracked point or matte; optionally smoothed); the lens at that
   frame (keyframes) -> signed CoC; :func:`focuspull.render.render_coc`; atomic write
   keeping the input metadata; preview; a progress event.

Chunk invariance: everything temporal (depth stabilisation, per-clip normalisation,
focus smoothing and tracking) is computed over the *clip* -- every frame of the input on
disk (or in-band) -- in clip-index space, never over the requested frames.  So rendering
1001-1012 in one run or as three chunks gives the same pixels, bit for bit.

Torch is imported only when a frame is rendered (the renderer, the depth models).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from focuspull import focus as focus_ops
from focuspull.errors import Cancelled, DepthError, InputError, JobSpecError, LensError, SequenceError
from focuspull.io.atomic import remove_stale_temp_files
from focuspull.io.frames import SequencePattern, format_frame_ranges
from focuspull.io.images import is_complete_frame, read_image, write_image
from focuspull.io.metadata import FINGERPRINT_KEY
from focuspull.io.preflight import preflight
from focuspull.io.transfer import default_transfer_for
from focuspull.job import RenderJob
from focuspull.lens import (ArtisticLens, LinearLens, ThinLens, coc_from_depth, coc_from_disparity,
                            disparity_from_depth)
from focuspull.progress import Throughput

# Focus on "infinity" (a point on the sky, disparity 0) is a focus distance this far away.
_FAR_FOCUS_DISPARITY = 1e-6
_EXR = (".exr", ".sxr", ".mxr")


@dataclass
class JobResult:
    """What a run did.

    Attributes:
        rendered: frame numbers rendered in this run, in order.
        skipped: frames skipped by ``output.resume`` (already complete on disk).
        written: output paths written (empty for in-band output).
        frames: ``{frame: H x W x C float32}`` when there is no output pattern (in-band).
        preview: the preview movie written, or None.
        elapsed_s: wall time of the whole run.
    """

    rendered: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    written: list = field(default_factory=list)
    frames: dict = field(default_factory=dict)
    preview: Optional[str] = None
    elapsed_s: float = 0.0


# --------------------------------------------------------------------------- sources
class _DiskClip:
    """Frames of a sequence on disk; keeps the few most recent reads."""

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
        self.frames = list(job.frames) or list(on_disk)
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
        self.transfer = job.input.transfer or default_transfer_for(
            self.pattern.path(self.frames[0]), info.metadata_of_first.get("format"))
        self.depth_channel = info.depth_channel
        self.height, self.width = info.height, info.width
        self.channel_names = list(info.channel_names)
        self._cache: dict[tuple, object] = {}

    def _read(self, pattern: SequencePattern, frame: int):
        key = (str(pattern), frame)
        if key not in self._cache:
            if len(self._cache) >= 3:  # colour and depth of a frame come from one read; 4K is big
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = read_image(pattern.path(frame), transfer=self.job.input.transfer
                                          if pattern is self.pattern else "linear")
        return self._cache[key]

    def colour(self, frame: int) -> np.ndarray:
        return self._read(self.pattern, frame).rgba()

    def metadata(self, frame: int) -> dict:
        return self._read(self.pattern, frame).metadata

    def depth(self, frame: int) -> np.ndarray:
        if self.depth_pattern is not None:
            return self._read(self.depth_pattern, frame).channel(self.depth_channel)
        return self._read(self.pattern, frame).channel(self.depth_channel)

    def channel(self, frame: int, name: str) -> np.ndarray:
        return self._read(self.pattern, frame).channel(name)


class _InbandClip:
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
        self.transfer = job.input.transfer or "linear"  # arrays at module boundaries are linear

    def colour(self, frame: int) -> np.ndarray:
        return np.asarray(self.data[frame]["rgba"], dtype=np.float32)

    def metadata(self, frame: int) -> dict:  # noqa: ARG002 - same interface as _DiskClip
        return {}

    def depth(self, frame: int) -> np.ndarray:
        return np.asarray(self.data[frame]["depth"], dtype=np.float32)

    def channel(self, frame: int, name: str) -> np.ndarray:
        raise InputError(f"in-band frames carry no channel {name!r}", "focus in-band renders with a point")


def frames_read(job: RenderJob, clip_frames: list[int], frames: list[int]) -> list[int]:
    """Every clip frame a render of ``frames`` reads: the frames themselves, the depth
    stabilisation window and focus smoothing window around them, the frames a tracked
    point is followed through, and the whole clip for a depth model's normalisation."""
    if job.depth.kind == "model":
        return list(clip_frames)  # normalised over the whole clip
    index = {f: i for i, f in enumerate(clip_frames)}
    focus = job.focus
    reach = job.depth.stabilise_window
    if focus.mode in ("point", "matte"):
        reach += focus.smoothing_window  # the focus of a neighbour reads its stabilised depth
    lo = max(0, min(index[f] for f in frames) - reach)
    hi = min(len(clip_frames) - 1, max(index[f] for f in frames) + reach)
    if focus.mode == "point" and focus.track_from_frame in index:
        lo, hi = min(lo, index[focus.track_from_frame]), max(hi, index[focus.track_from_frame])
    return sorted(set(clip_frames[lo:hi + 1]) | set(frames))


# --------------------------------------------------------------------------- depth and focus
class _Disparity:
    """Disparity per clip index: raw (metric or per-clip normalised) and stabilised."""

    def __init__(self, job: RenderJob, clip) -> None:
        self.job, self.clip = job, clip
        self.index = {f: i for i, f in enumerate(clip.clip_frames)}
        self._estimator = None
        self._clip_range = None
        if job.depth.kind == "model":
            from focuspull.depth import get_estimator  # noqa: PLC0415 - torch only when needed

            self._estimator = get_estimator(job.depth.model, job.depth.checkpoint_dir or "", job.device)
        self._stabiliser = None
        if job.depth.stabilise_window > 0:
            from focuspull.stabilise import DepthStabiliser  # noqa: PLC0415

            self._stabiliser = DepthStabiliser(self.raw, 0, len(clip.clip_frames) - 1,
                                               job.depth.stabilise_window)
        self._cache: dict[int, np.ndarray] = {}

    def raw(self, i: int) -> np.ndarray:
        """Raw disparity of clip index ``i``; errors name the frame number, not the index."""
        frame = self.clip.clip_frames[i]
        try:
            if self._estimator is not None:
                if self._clip_range is None:
                    self._clip_range = self._measure_clip_range()
                from focuspull.depth import normalise_relative  # noqa: PLC0415

                disparity = normalise_relative(self._estimate(frame), self._clip_range)
            else:
                disparity = disparity_from_depth(self.clip.depth(frame), self.job.depth.depth_math,
                                                 bad_depth=self.job.depth.bad_depth)
        except DepthError as exc:
            if exc.message.startswith("frame "):
                raise
            raise DepthError(f"frame {frame}: {exc.message}", exc.hint) from None
        disparity = np.asarray(disparity, dtype=np.float32)
        if disparity.shape != (self.clip.height, self.clip.width):
            raise DepthError(f"frame {frame}: depth is {disparity.shape[1::-1]} (W x H), the images are "
                             f"{self.clip.width} x {self.clip.height}", "give every depth frame the image size")
        if not np.isfinite(disparity).all():
            raise DepthError(f"frame {frame}: disparity has {int((~np.isfinite(disparity)).sum())} "
                             "non-finite pixels", "fix the depth of that frame, or pass --bad-depth far")
        return disparity

    def _estimate(self, frame: int) -> np.ndarray:
        return self._estimator(self.clip.colour(frame)[:, :, :3])

    def _measure_clip_range(self):
        # Over every frame of the clip, not the chunk: a chunk must normalise like the whole.
        from focuspull.depth import relative_range  # noqa: PLC0415

        return relative_range(self._estimate(f) for f in self.clip.clip_frames)

    def at(self, frame: int) -> np.ndarray:
        """Disparity used for rendering frame ``frame`` (stabilised when asked)."""
        if frame not in self._cache:
            if len(self._cache) > 2 * self.job.focus.smoothing_window + 2:
                self._cache.pop(next(iter(self._cache)))
            i = self.index[frame]
            self._cache[frame] = self._stabiliser.frame(i) if self._stabiliser else self.raw(i)
        return self._cache[frame]


class _Focus:
    """Focus disparity per frame, with smoothing and point tracking over the clip."""

    def __init__(self, job: RenderJob, clip, disparity: _Disparity) -> None:
        self.job, self.clip, self.disparity = job, clip, disparity
        self._smoothed: dict[int, float] = {}
        self._track: dict[int, tuple] = {}

    def prepare(self, frames: list[int]) -> None:
        """Compute everything temporal that ``frames`` need (tracks, smoothing window)."""
        f = self.job.focus
        if f.mode not in ("point", "matte"):
            return
        index = self.disparity.index
        window = f.smoothing_window
        lo = max(0, min(index[t] for t in frames) - window)
        hi = min(len(self.clip.clip_frames) - 1, max(index[t] for t in frames) + window)
        needed = self.clip.clip_frames[lo:hi + 1]
        if f.mode == "point" and f.track_from_frame is not None:
            start = f.track_from_frame
            if start not in index:
                raise InputError(f"the focus point is picked on frame {start}, which is not in the clip "
                                 f"({format_frame_ranges(self.clip.clip_frames)})",
                                 "pick the point on a frame of the input (--focus-point X,Y@FRAME)")
            # Track over every clip frame between the pick and the frames needed, so the
            # position at t does not depend on where a chunk starts.
            a, b = min(index[start], lo), max(index[start], hi)
            self._track = focus_ops.track_point(
                self.clip.colour, start, (f.point_x.value_at(start), f.point_y.value_at(start)),
                self.clip.clip_frames[a:b + 1])
        raw = {index[t]: self._raw(t) for t in needed}
        self._smoothed = focus_ops.smooth_focus(raw, window) if window > 0 else raw

    def _raw(self, frame: int) -> float:
        f = self.job.focus
        disparity = self.disparity.at(frame)
        if f.mode == "point":
            x, y = self._track.get(frame) or (f.point_x.value_at(frame), f.point_y.value_at(frame))
            return focus_ops.focus_disparity_at(disparity, x, y, int(round(f.point_radius_px)))
        return focus_ops.focus_disparity_from_matte(disparity, self.clip.channel(frame, f.matte_channel))

    def at(self, frame: int) -> float:
        f = self.job.focus
        if f.mode == "distance":
            return 1.0 / f.distance_m.value_at(frame)
        if f.mode == "disparity":
            return f.disparity.value_at(frame)
        return self._smoothed[self.disparity.index[frame]]


# --------------------------------------------------------------------------- lens
def lens_at(job: RenderJob, frame: int, focus_disparity: float):
    """The lens of ``frame`` (keyframes evaluated) focused at ``focus_disparity``."""
    lens = job.lens
    if lens.mode == "physical":
        focus_disparity = max(focus_disparity, _FAR_FOCUS_DISPARITY)
        return ThinLens(lens.focal_length_mm.value_at(frame), lens.fstop.value_at(frame),
                        lens.sensor_width_mm.value_at(frame), 1.0 / focus_disparity,
                        cg_camera=lens.cg_camera)
    if lens.size_px is not None:
        if focus_disparity <= 0:
            raise LensError(f"frame {frame}: focus is at infinity (disparity {focus_disparity:g}); "
                            "--size is the blur at infinity, which would then be 0",
                            "focus on something nearer, or use --k")
        return ArtisticLens(lens.size_px.value_at(frame), focus_disparity)
    return LinearLens(lens.k.value_at(frame), focus_disparity)


def _check_lens_everywhere(job: RenderJob, frames: list[int]) -> None:
    """Raise a LensError now rather than on frame 87 of 100."""
    if job.depth.depth_math == "direct":
        return  # the depth channel is the CoC: lens and focus settings play no part
    for frame in frames:
        if job.focus.mode == "distance":
            lens_at(job, frame, 1.0 / job.focus.distance_m.value_at(frame))
        elif job.lens.mode == "physical":
            ThinLens(job.lens.focal_length_mm.value_at(frame), job.lens.fstop.value_at(frame),
                     job.lens.sensor_width_mm.value_at(frame), 1e6)
        elif job.lens.size_px is not None and job.lens.size_px.value_at(frame) < 0:
            raise LensError(f"frame {frame}: size is {job.lens.size_px.value_at(frame)}",
                            "keep --size >= 0 on every frame")


# --------------------------------------------------------------------------- output
def _output_channels(job: RenderJob, clip) -> tuple[list[str], Optional[str]]:
    """Channel names written, and the depth channel passed through (or None)."""
    names = ["R", "G", "B", "A"][:4 if "A" in clip.channel_names else 3]
    if isinstance(clip, _InbandClip):
        names = clip.channel_names
    if job.output.setup_view:
        names = ["R", "G", "B"]  # a false-colour view: alpha and depth would mislead
    passthrough = None
    pattern = job.output.pattern
    if (pattern and os.path.splitext(pattern)[1].lower() in _EXR and job.output.keep_depth
            and not job.output.setup_view and job.depth.kind != "model" and clip.depth_channel):
        passthrough = clip.depth_channel if job.depth.kind == "channel" else "Z"
    return names + ([passthrough] if passthrough else []), passthrough


def _check_no_clobber(job: RenderJob, clip, frames: list[int]) -> None:
    """Refuse outputs that are files this render reads: an image or depth frame of the clip,
    compared as real paths (symlinks and ``..`` resolved).  ``--overwrite`` never allows it."""
    if isinstance(clip, _InbandClip):
        return
    reads: dict[str, str] = {}
    for f in clip.clip_frames:
        reads.setdefault(os.path.realpath(clip.pattern.path(f)), "image")
        if clip.depth_pattern is not None:
            reads.setdefault(os.path.realpath(clip.depth_pattern.path(f)), "depth")
    targets = []
    if job.output.pattern:
        out = SequencePattern(job.output.pattern)
        targets += [(f"the output {job.output.pattern}", out.path(f)) for f in frames]
    if job.output.preview:
        targets.append((f"the preview {job.output.preview}", job.output.preview))
    for what, path in targets:
        kind = reads.get(os.path.realpath(path))
        if kind is not None:
            raise InputError(f"{what} would overwrite the input: {path} is {os.path.realpath(path)}, "
                             f"one of the {kind} frames this render reads",
                             "write the output to another directory or file name")


def _plan_output(job: RenderJob, clip, frames: list[int], names: list[str]) -> tuple[list, list]:
    """``(to_render, skipped)`` after the resume / overwrite rules; refuse collisions."""
    _check_preview_target(job)
    if not job.output.pattern:
        return list(frames), []
    out = SequencePattern(job.output.pattern)
    if out.is_single_image and len(frames) > 1:
        raise InputError(f"output {job.output.pattern} has no frame number but {len(frames)} frames "
                         "are rendered", "add a frame token, e.g. out/shot_dof.####.exr")
    directory = os.path.dirname(os.path.abspath(out.path(frames[0])))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output directory {directory}: {exc.strerror}",
                         "pass an output path in a writable directory") from None
    if not os.access(directory, os.W_OK | os.X_OK):  # fail now, not after the first frame renders
        raise InputError(f"cannot write to the output directory {directory}",
                         "check that the output directory exists, is writable and has free space")
    if job.output.resume:
        # Temps of killed renders (SIGKILL, power cut) would otherwise pile up forever.
        remove_stale_temp_files(directory)
    existing = [f for f in frames if os.path.exists(out.path(f))]
    if not existing or job.output.overwrite:
        return list(frames), []
    if not job.output.resume:
        raise InputError(f"{len(existing)} output frame{'s' if len(existing) > 1 else ''} already "
                         f"exist: {job.output.pattern} frames {format_frame_ranges(existing)}",
                         "pass --resume to keep finished frames and render the rest, "
                         "or --overwrite to replace them")
    shape = (clip.height, clip.width, len(names))
    # An EXR of another render (other lens, the setup view...) is not a finished frame of this one.
    same_render = {FINGERPRINT_KEY: job.fingerprint()} if _is_exr(job.output.pattern) else None
    skipped = [f for f in existing if is_complete_frame(out.path(f), shape, names, same_render)]
    return [f for f in frames if f not in set(skipped)], skipped


def _check_preview_target(job: RenderJob) -> None:
    """Same rule as output frames: an existing preview is replaced only when asked."""
    preview = job.output.preview
    if not preview:
        return
    preview_dir = os.path.dirname(os.path.abspath(preview))
    try:
        os.makedirs(preview_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the preview directory {preview_dir}: {exc.strerror}",
                         "pass --preview in a writable directory") from None
    if os.path.exists(preview) and not (job.output.overwrite or job.output.resume):
        raise InputError(f"the preview {preview} already exists",
                         "pass --overwrite to replace it, --resume to rebuild it over the whole range, "
                         "or another --preview path")


def _is_exr(path: Optional[str]) -> bool:
    return bool(path) and os.path.splitext(path)[1].lower() in _EXR


def _output_transfer(job: RenderJob, clip) -> Optional[str]:
    """Curve of the written colour: EXR stays scene-linear; other formats get the input's own
    curve, so a display-referred plate (rec709 PNG) comes back in that curve.  Linear input
    written to a display format gets that format's default (sRGB) rather than a linear PNG."""
    if not job.output.pattern or _is_exr(job.output.pattern):
        return None
    return clip.transfer if clip.transfer != "linear" else None


# --------------------------------------------------------------------------- the driver
def run_job(job: RenderJob, *, on_event: Optional[Callable[[dict], None]] = None,
            cancelled: Optional[Callable[[], bool]] = None,
            inband: Optional[Mapping] = None) -> JobResult:
    """Render ``job``; see the module docstring and docs/contracts.md.

    Args:
        on_event: called after every finished frame with ``{"type": "frame", "frame": n,
            "done": i, "total": N, "fps": x, "eta_s": y, "path": str | None}``.
        cancelled: polled before every frame; True abandons the run with
            :class:`~focuspull.errors.Cancelled` (finished frames stay, nothing partial).
        inband: ``{frame: {"rgba": H x W x C, "depth": H x W}}`` instead of files.
    Raises:
        InputError (and subclasses) before anything is rendered when the job cannot run.
    """
    started = time.monotonic()
    if not isinstance(job, RenderJob):
        job = RenderJob.from_dict(job)
    if inband is None and not job.input.pattern:
        raise JobSpecError("the job has neither an input pattern nor in-band frames",
                           "set input.pattern (e.g. shot.####.exr) or send the frames with the job")
    if job.depth.depth_math == "direct" and job.depth.stabilise_window > 0:
        raise JobSpecError("depth stabilisation needs depth, but depth_math is 'direct' (a CoC pass)",
                           "drop --stabilise for a direct CoC channel")
    clip = _InbandClip(job, inband) if inband is not None else _DiskClip(job)
    frames = list(clip.frames)
    _check_no_clobber(job, clip, frames)
    _check_lens_everywhere(job, frames)
    if job.focus.mode == "matte" and not isinstance(clip, _InbandClip):
        clip.channel(frames[0], job.focus.matte_channel)  # a missing matte fails now, not later
    render = _renderer(job, cancelled)  # checks aperture and highlights
    disparity = _Disparity(job, clip)  # loads the depth model, if any
    names, passthrough = _output_channels(job, clip)
    to_render, skipped = _plan_output(job, clip, frames, names)
    result = JobResult(skipped=skipped)
    if not to_render and not job.output.preview:
        result.elapsed_s = time.monotonic() - started
        return result

    focus = _Focus(job, clip, disparity)
    if to_render:
        focus.prepare(to_render)
    out = SequencePattern(job.output.pattern) if job.output.pattern else None
    transfer = _output_transfer(job, clip)
    fingerprint = {FINGERPRINT_KEY: job.fingerprint()} if _is_exr(job.output.pattern) else {}
    preview = None
    if job.output.preview:
        from focuspull.io.preview import PreviewWriter  # noqa: PLC0415 - PyAV only when asked

        preview = PreviewWriter(job.output.preview, job.output.preview_fps)
    # With a preview, frames skipped by --resume are read back so the movie covers the whole
    # requested range in order, not only what this run rendered.
    todo = set(to_render)
    sequence = list(frames) if preview is not None else list(to_render)
    meter = Throughput(len(to_render))
    try:
        for frame in sequence:
            if frame not in todo:
                preview.write(read_image(out.path(frame), transfer=transfer).rgba())
                continue
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled after {len(result.rendered)} of {len(to_render)} frames",
                                "finished frames are complete on disk; run again with --resume")
            image = render(frame, clip, disparity, focus)
            path = None
            if out is not None:
                pixels = image
                if passthrough:
                    pixels = np.concatenate([image, clip.depth(frame)[:, :, None]], axis=2)
                metadata = {k: v for k, v in clip.metadata(frame).items() if k != FINGERPRINT_KEY}
                path = write_image(out.path(frame), pixels, names, metadata={**metadata, **fingerprint},
                                   compression=job.output.compression, half=job.output.half,
                                   transfer=transfer)
                result.written.append(path)
            else:
                result.frames[frame] = image
            if preview is not None:
                preview.write(image)
            result.rendered.append(frame)
            fps, eta_s = meter.tick()
            if on_event is not None:
                on_event({"type": "frame", "frame": frame, "done": meter.done, "total": meter.total,
                          "fps": fps, "eta_s": eta_s, "path": path})
    except BaseException:
        if preview is not None:
            try:  # keep what was rendered viewable, but never mask the real error
                if preview.close():
                    result.preview = job.output.preview
            except Exception:  # noqa: BLE001
                preview.abort()
        raise
    if preview is not None and preview.close():
        result.preview = job.output.preview
    result.elapsed_s = time.monotonic() - started
    return result


def _renderer(job: RenderJob, cancelled: Optional[Callable[[], bool]] = None):
    """``render(frame, clip, disparity, focus) -> H x W x C`` for this job (torch loads here)."""
    from focuspull.aperture import Aperture  # noqa: PLC0415
    from focuspull.render import Highlights, render_coc  # noqa: PLC0415

    _check_device(job.device)
    aperture = Aperture(job.aperture.blades, job.aperture.rotation_deg, job.aperture.roundness)
    highlights = (Highlights(job.highlights.threshold, job.highlights.gain)
                  if job.highlights.threshold is not None else None)
    max_px = job.lens.max_size_px

    def render(frame: int, clip, disparity: _Disparity, focus: _Focus) -> np.ndarray:
        image = clip.colour(frame)
        if job.depth.depth_math == "direct":
            coc = coc_from_depth(clip.depth(frame), None, "direct", max_radius_px=max_px,
                                 bad_depth=job.depth.bad_depth)
        else:
            focus_disparity = focus.at(frame)
            lens = lens_at(job, frame, focus_disparity)
            coc = coc_from_disparity(disparity.at(frame), lens.focus_disparity,
                                     lens.k_px(clip.width), max_px)
        if job.output.setup_view:
            from focuspull.setup_view import focal_plane_setup  # noqa: PLC0415

            return np.asarray(focal_plane_setup(image, coc), dtype=np.float32)[:, :, :3]
        try:
            rendered = render_coc(image, coc, aperture=aperture, highlights=highlights,
                                  plane_spacing_px=job.plane_spacing_px, device=job.device,
                                  cancelled=cancelled)
        except Cancelled:
            raise Cancelled(f"cancelled while rendering frame {frame}; it was not written",
                            "finished frames are complete on disk; run again with --resume") from None
        return np.asarray(rendered, dtype=np.float32)

    return render


def _check_device(name: str) -> None:
    """A device the renderer can use, or an InputError saying which to pass."""
    import torch  # noqa: PLC0415

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"unknown device {name!r}", "pass --device cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r}: CUDA is not available on this machine",
                             "use --device cpu (or run on a machine with an NVIDIA GPU)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r}: this machine has {count} CUDA device{'s' if count != 1 else ''}",
                             f"pass --device cuda:0 .. cuda:{count - 1}, or --device cpu")
        return
    if device.type == "mps" and torch.backends.mps.is_available():
        return
    raise InputError(f"device {name!r} is not supported here", "pass --device cpu, cuda or cuda:N")
