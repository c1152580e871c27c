"""The video driver: run one :class:`~focuspull.spec.job.RenderJob` over its frame range.

Order of work (see docs/contracts.md):

1. **Preflight** -- every check that can fail is done before the first frame renders:
   sequence headers (missing frames, sizes, depth channel), lens values at every frame,
   the depth model, output collisions (refuse / resume / overwrite).
2. **Per frame** -- read image and depth; depth -> disparity (metric via
   :func:`focuspull.stages.lens.disparity_from_depth`, or a model's relative disparity
   normalised once per *clip*); optional temporal stabilisation; focus disparity
   (distance, point, tracked point or matte; optionally smoothed); the lens at that
   frame (keyframes) -> signed CoC; :func:`focuspull.stages.render.layered.render_coc`; atomic write
   keeping the input metadata; preview; a progress event.

Chunk invariance: everything temporal (depth stabilisation, per-clip normalisation,
focus smoothing and tracking) is computed over the *clip* -- every frame of the input on
disk (or in-band) -- in clip-index space, never over the requested frames.  So rendering
1001-1012 in one run or as three chunks gives the same pixels, bit for bit.

Torch is imported only when a frame is rendered (the renderer, the depth models).
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from focuspull.stages import focus as focus_ops
from focuspull.errors import Cancelled, DepthError, InputError, JobSpecError
from focuspull.io.frames import SequencePattern, format_frame_ranges
from focuspull.io.images import read_image, write_parts
from focuspull.io.metadata import FINGERPRINT_KEY
from focuspull.spec.job import RenderJob
from focuspull.stages.lens import coc_from_depth, coc_from_disparity, disparity_from_depth
from focuspull.pipeline.plan import LensPlan, RenderSection
from focuspull.pipeline.overlap import ReadAhead, WriteBehind
from focuspull.pipeline.progress import Throughput
from focuspull.stages.models import ModelCache
from focuspull.stages.refine import MODEL_BY_PRECISION
from focuspull.pipeline.clip import DiskClip, InbandClip
from focuspull.pipeline.output_plan import (check_no_clobber, display_window, frame_parts, is_exr, output_channels,
                                            output_compression, output_transfer, plan_output,
                                            rendered_channel_groups)



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


# --------------------------------------------------------------------------- depth and focus
class _Disparity:
    """Disparity per clip index: raw (metric or per-clip normalised) and stabilised."""

    def __init__(self, job: RenderJob, clip, models: ModelCache) -> None:
        self.job, self.clip = job, clip
        self.index = {f: i for i, f in enumerate(clip.clip_frames)}
        self._estimates = None
        self._clip_estimates = None  # a temporal estimator's results for the whole clip
        self._clip_range = None
        if job.depth.kind == "model":
            from focuspull.stages.depth.estimates import EstimateStore  # noqa: PLC0415

            # Each frame is estimated once, then read back from the on-disk cache (per clip
            # frame and checkpoint): a re-render with other lens settings estimates nothing.
            estimator = models.get("depth", job.depth.model, job.depth.checkpoint_dir or "")
            self._estimates = EstimateStore(estimator, job.depth.model, job.depth.checkpoint_dir or "")
        self._stabiliser = None
        if job.depth.stabilise_window > 0:
            from focuspull.stages.depth.stabilise import DepthStabiliser  # noqa: PLC0415

            # The colour frames steer the motion compensation (optical flow between them).
            self._stabiliser = DepthStabiliser(self.raw, 0, len(clip.clip_frames) - 1,
                                               job.depth.stabilise_window,
                                               get_image=lambda i: clip.colour(clip.clip_frames[i]))
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def raw(self, i: int) -> np.ndarray:
        """Raw disparity of clip index ``i``; errors name the frame number, not the index."""
        frame = self.clip.clip_frames[i]
        try:
            if self._estimates is not None:
                if self._clip_range is None:
                    self._clip_range = self._measure_clip_range()
                from focuspull.stages.depth.sources import normalise_relative  # noqa: PLC0415

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
                             "non-finite pixels", "fix the depth of that frame, or set 'depth.bad_depth' to far",
                             field="depth.bad_depth")
        return disparity

    def _estimate(self, frame: int) -> np.ndarray:
        if getattr(self._estimates.estimator, "temporal", False):
            # A video model sees the clip's frames together: always the whole clip (windows
            # on clip indices), so a chunk gets exactly the frames of one full run.
            if self._clip_estimates is None:
                self._clip_estimates = self._estimates.get_clip(
                    [self.clip.colour(f)[:, :, :3] for f in self.clip.clip_frames])
            return self._clip_estimates[self.index[frame]]
        return self._estimates.get(self.clip.colour(frame)[:, :, :3])

    def _measure_clip_range(self):
        # Over every frame of the clip, not the chunk: a chunk must normalise like the whole.
        from focuspull.stages.depth.sources import ClipNormaliser  # noqa: PLC0415

        normaliser = ClipNormaliser()
        frames = list(self.clip.clip_frames)
        if getattr(self._estimates.estimator, "temporal", False):
            for frame in frames:
                normaliser.add(self._estimate(frame))
            return normaliser.clip_range()
        step = max(1, int(getattr(self._estimates.estimator, "batch_size", 1)))
        for start in range(0, len(frames), step):
            for disparity in self._estimates.get_many(self.clip.colour(f)[:, :, :3]
                                                      for f in frames[start:start + step]):
                normaliser.add(disparity)
        return normaliser.clip_range()

    @property
    def can_read_ahead(self) -> bool:
        """Whether :meth:`at` may run on the reader thread: plain depth -> disparity, no model
        (torch, competing with the render) and no stabiliser (a window of frames)."""
        return self._estimates is None and self._stabiliser is None and self.job.depth.depth_math != "direct"

    def at(self, frame: int) -> np.ndarray:
        """Disparity used for rendering frame ``frame`` (stabilised when asked).  Safe to call
        from the reader thread too (:attr:`can_read_ahead`); it never computes a frame the
        render is computing, since a read-ahead ends before its frame renders."""
        with self._lock:
            if frame in self._cache:
                return self._cache[frame]
        i = self.index[frame]
        value = self._stabiliser.frame(i) if self._stabiliser else self.raw(i)
        with self._lock:
            if frame not in self._cache:
                while len(self._cache) > 2 * self.job.focus.smoothing_window + 2:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[frame] = value
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
                                 "pick the point on a frame of the input", field="focus.track_from_frame")
            # Track over every clip frame between the pick and the frames needed, so the
            # position at t does not depend on where a chunk starts.
            a, b = min(index[start], lo), max(index[start], hi)
            self._track = focus_ops.track_point(
                self.clip.colour, start, self._point(start), self.clip.clip_frames[a:b + 1])
        raw = {index[t]: self._raw(t) for t in needed}
        self._smoothed = focus_ops.smooth_focus(raw, window) if window > 0 else raw

    def _raw(self, frame: int) -> float:
        f = self.job.focus
        disparity = self.disparity.at(frame)
        if f.mode == "point":
            x, y = self._track.get(frame) or self._point(frame)
            return focus_ops.focus_disparity_at(disparity, x, y, int(round(f.point_radius_px)))
        return focus_ops.focus_disparity_from_matte(disparity, self.clip.channel(frame, f.matte_channel))

    def _point(self, frame: int) -> tuple[float, float]:
        """The focal point of ``frame`` in array pixels (data window, top-left, y down), from
        display-window pixels with the job's origin (bottom-left: Nuke's pixel-corner
        coordinates, so the bottom-left pixel's centre is 0.5, 0.5)."""
        f = self.job.focus
        x, y = f.point_x.value_at(frame), f.point_y.value_at(frame)
        full_x, full_y, _, full_h = display_window(self.clip, frame)
        if f.origin == "bottom-left":
            x, y = x - 0.5, full_h - 0.5 - y
        return x + full_x, y + full_y

    def at(self, frame: int) -> float:
        """The disparity a point or matte picked for ``frame`` (smoothed when asked)."""
        return self._smoothed[self.disparity.index[frame]]


def _check_depth_values(job: RenderJob, depth: np.ndarray) -> None:
    """The depth checks of a render, on one frame's depth (preflight of every frame)."""
    if job.depth.depth_math == "direct":
        coc_from_depth(depth, None, "direct", max_radius_px=job.lens.max_size_px, bad_depth=job.depth.bad_depth)
        return
    disparity = disparity_from_depth(depth, job.depth.depth_math, bad_depth=job.depth.bad_depth)
    if not np.isfinite(disparity).all():
        raise DepthError(f"disparity has {int((~np.isfinite(disparity)).sum())} non-finite pixels",
                         "fix the depth of that frame, or pass --bad-depth far")


# --------------------------------------------------------------------------- the driver
def run_job(job: RenderJob, *, on_event: Optional[Callable[[dict], None]] = None,
            cancelled: Optional[Callable[[], bool]] = None,
            inband: Optional[Mapping] = None, models: Optional[ModelCache] = None) -> JobResult:
    """Render ``job``; see the module docstring and docs/contracts.md.

    Args:
        on_event: called after every finished frame with ``{"type": "frame", "frame": n,
            "done": i, "total": N, "fps": x, "eta_s": y, "path": str | None}``.
        cancelled: polled before every frame; True abandons the run with
            :class:`~focuspull.errors.Cancelled` (finished frames stay, nothing partial).
        inband: ``{frame: {"rgba": H x W x C, "depth": H x W}}`` instead of files.
        models: the device's loaded models (the server's worker keeps one cache per device);
            None = load what the job needs for this run only.
    Raises:
        InputError (and subclasses) before anything is rendered when the job cannot run.
    """
    started = time.monotonic()
    if not isinstance(job, RenderJob):
        job = RenderJob.from_dict(job)
    _import_renderer_ahead()  # torch loads (~1 s) while the preflight reads every frame
    if inband is None and not job.input.pattern:
        raise JobSpecError("the job has neither an input pattern nor in-band frames",
                           "set input.pattern (e.g. shot.####.exr) or send the frames with the job")
    if job.depth.depth_math == "direct" and job.depth.stabilise_window > 0:
        raise JobSpecError("depth stabilisation needs depth, but depth_math is 'direct' (a CoC pass)",
                           "set 'depth.stabilise_window' to 0 for a direct CoC channel",
                           field="depth.stabilise_window")
    clip = InbandClip(job, inband) if inband is not None else DiskClip(job)
    frames = list(clip.frames)
    check_no_clobber(job, clip, frames)
    # The lens sees the film back: the display window, whatever overscan is stored.
    lenses = LensPlan(job, display_window(clip, frames[0])[2])
    if job.depth.depth_math != "direct":  # a CoC pass: lens and focus settings play no part
        lenses.preflight(frames)
    if job.focus.mode == "matte":
        clip.channel(frames[0], job.focus.matte_channel)  # a missing matte fails now, not later
    if job.depth.kind != "model":
        clip.check_depth(lambda frame, depth: _check_depth_values(job, depth))  # NaN on frame 87: now
    render = _renderer(job, lenses, cancelled, rendered_channel_groups(job, clip))  # checks the device
    models = models or ModelCache(job.device)
    disparity = _Disparity(job, clip, models)  # the depth model, if any
    names, passthrough = output_channels(job, clip)
    to_render, skipped = plan_output(job, clip, frames, names)
    result = JobResult(skipped=skipped)
    if not to_render and not job.output.preview:
        result.elapsed_s = time.monotonic() - started
        return result

    focus = _Focus(job, clip, disparity)
    if job.refine.model_dir is not None and not job.output.setup_view:
        render = _Refined(job, render, clip, disparity, focus, models)
        if to_render:
            focus.prepare(render.neighbours(to_render))
    elif to_render:
        focus.prepare(to_render)
    out = SequencePattern(job.output.pattern) if job.output.pattern else None
    transfer = output_transfer(job, clip)
    compression = output_compression(job, clip)
    fingerprint = {FINGERPRINT_KEY: job.fingerprint()} if is_exr(job.output.pattern) else {}
    preview = None
    if job.output.preview:
        from focuspull.io.preview import PreviewWriter  # noqa: PLC0415 - PyAV only when asked

        preview = PreviewWriter(job.output.preview, job.output.preview_fps, colour=clip.ocio)
    # With a preview, frames skipped by --resume are read back so the movie covers the whole
    # requested range in order, not only what this run rendered.
    todo = set(to_render)
    sequence = list(frames) if preview is not None else list(to_render)
    meter = Throughput(len(to_render))
    # The next frame decodes while this one renders; the last one is written while this
    # one renders (pipeline/overlap.py).  A frame is done once it is on disk.
    reader = ReadAhead(clip, then=disparity.at if disparity.can_read_ahead else None)
    writer = WriteBehind()
    upcoming = [f for f in sequence if f in todo]
    after = dict(zip(upcoming, upcoming[1:]))  # frame -> the next frame this run renders

    def done(frame: int, path: Optional[str]) -> None:
        if path is not None:
            result.written.append(path)
        result.rendered.append(frame)
        fps, eta_s = meter.tick()
        if on_event is not None:
            on_event({"type": "frame", "frame": frame, "done": meter.done, "total": meter.total,
                      "fps": fps, "eta_s": eta_s, "path": path})

    def write_done() -> None:
        finished = writer.finish()
        if finished is not None:
            done(*finished)

    try:
        for frame in sequence:
            if frame not in todo:
                preview.write(read_image(out.path(frame), transfer=transfer, colour=clip.ocio).rgba())
                continue
            if cancelled is not None and cancelled():
                write_done()  # the frame being written is complete: count it
                raise Cancelled(f"cancelled after {len(result.rendered)} of {len(to_render)} frames",
                                "finished frames are complete on disk; render again using 'output.resume'", field="output.resume")
            reader.ahead(after.get(frame))
            image, rendered_channels = render(frame, clip, disparity, focus)
            if out is not None:
                parts = frame_parts(job, clip, frame, image, names, passthrough, fingerprint, rendered_channels)
                path = out.path(frame)
                write_done()  # the previous frame: its error stops the job before this one is written
                writer.start(frame, path, lambda path=path, parts=parts: write_parts(
                    path, parts, compression=compression, half=job.output.half, transfer=transfer,
                    colour=clip.ocio))
            else:
                result.frames[frame] = image
            if preview is not None:
                preview.write(image)
            if out is None:
                done(frame, None)
        write_done()
    except BaseException:
        try:  # the write in flight ends first (complete, or failed and removed); count it if complete
            if writer.busy:
                write_done()
        except BaseException:  # noqa: BLE001 - the first error is the one to report
            pass
        finally:
            writer.close()
            reader.close()
        if preview is not None:
            try:  # keep what was rendered viewable, but never mask the real error
                if preview.close():
                    result.preview = job.output.preview
            except Exception:  # noqa: BLE001
                preview.abort()
        raise
    writer.close()
    reader.close()
    if preview is not None and preview.close():
        result.preview = job.output.preview
    result.elapsed_s = time.monotonic() - started
    return result


def _renderer(job: RenderJob, lenses: LensPlan, cancelled: Optional[Callable[[], bool]] = None,
              channel_groups: Optional[list] = None):
    """``render(frame, clip, disparity, focus) -> (H x W x C, {channel: H x W})`` for this job
    (torch loads here): the picture, and the ``output.channels`` rendered with the same CoC."""
    _join_renderer_import()
    from focuspull.stages.render.layered import render_coc  # noqa: PLC0415

    _check_device(job.device)
    section = RenderSection.from_job(job, _filter_image(job))
    direct = job.depth.depth_math == "direct"

    def render(frame: int, clip, disparity: _Disparity, focus: _Focus) -> tuple:
        return render_parts(frame, clip, disparity, focus)[2:]

    def render_parts(frame: int, clip, disparity: _Disparity, focus: _Focus) -> tuple:
        """``(input colour, CoC, classical render, {channel: H x W})`` of ``frame``."""
        image = clip.colour(frame)
        max_px = section.max_radius_at(frame)
        if direct:
            coc = coc_from_depth(clip.depth(frame), None, "direct", max_radius_px=max_px,
                                 bad_depth=job.depth.bad_depth)
        else:
            optics = lenses.at(frame, None if lenses.fixed_focus else focus.at(frame))
            coc = coc_from_disparity(disparity.at(frame), optics.focus_disparity, optics.k_px, max_px,
                                     in_focus=optics.in_focus)
        if section.setup_view:
            from focuspull.stages.render.setup_view import focal_plane_setup  # noqa: PLC0415

            return image, coc, np.asarray(focal_plane_setup(image, coc), dtype=np.float32)[:, :, :3], {}
        pixel_aspect = float(clip.metadata(frame).get("pixelAspectRatio", 1.0) or 1.0)
        aperture = section.aperture_at(frame, pixel_aspect)

        def blur(pixels):
            return np.asarray(render_coc(pixels, coc, aperture=aperture, highlights=section.highlights,
                                         plane_spacing_px=section.plane_spacing_px, device=section.device,
                                         cancelled=cancelled), dtype=np.float32)

        try:
            rendered = blur(image)
            extras = {}
            for group in channel_groups or ():
                # An AOV layer blurs like the picture: its own values, the picture's alpha (coverage).
                planes = [clip.channel(frame, n) for n in group]
                planes += [np.zeros_like(planes[0])] * (3 - len(planes))
                if image.shape[2] == 4:
                    planes.append(image[:, :, 3])
                out = blur(np.stack(planes, axis=2))
                extras.update({n: out[:, :, i] for i, n in enumerate(group)})
        except Cancelled:
            raise Cancelled(f"cancelled while rendering frame {frame}; it was not written",
                            "finished frames are complete on disk; render again using 'output.resume'", field="output.resume") from None
        return image, coc, rendered, extras

    render.parts = render_parts
    return render


class _Refined:
    """The refiner after the classical render (docs/refine.md).

    Its temporal windows are placed over clip indices (:mod:`focuspull.stages.refine.clip`),
    so a frame reads the classical renders of its clip neighbours -- also outside the
    frames this run renders -- and a chunked render equals one run.  The ``output.channels``
    layers pass through as the classical render made them.
    """

    def __init__(self, job: RenderJob, render, clip, disparity: _Disparity, focus: _Focus,
                 models: ModelCache) -> None:
        from focuspull.stages.refine.clip import ClipRefiner  # noqa: PLC0415 - torch, diffusers

        # Loaded once per device and precision.
        pipeline = models.get("refine", MODEL_BY_PRECISION[job.refine.precision], job.refine.model_dir)
        self.clip, self.render, self.disparity, self.focus = clip, render, disparity, focus
        self._parts: dict[int, tuple] = {}
        self.refiner = ClipRefiner(pipeline, len(clip.clip_frames), lambda i: self._inputs(i)[:3])
        self.keep = 2 * pipeline.config.window + 1

    def neighbours(self, frames: list[int]) -> list[int]:
        """Clip frames the refinement of ``frames`` reads (for focus preparation)."""
        index = self.disparity.index
        reach = self.refiner.reach
        wanted = set()
        for f in frames:
            i = index[f]
            wanted.update(range(max(0, i - reach), min(len(self.clip.clip_frames), i + reach + 1)))
        return [self.clip.clip_frames[i] for i in sorted(wanted)]

    def _inputs(self, i: int) -> tuple:
        if i not in self._parts:
            if len(self._parts) >= self.keep:
                self._parts.pop(next(iter(self._parts)))
            frame = self.clip.clip_frames[i]
            self._parts[i] = self.render.parts(frame, self.clip, self.disparity, self.focus)
        return self._parts[i]

    def __call__(self, frame: int, clip, disparity: _Disparity, focus: _Focus) -> tuple:
        i = self.disparity.index[frame]
        return self.refiner.frame(i), self._inputs(i)[3]


_RENDERER = "focuspull.stages.render.layered"
_renderer_import: Optional[threading.Thread] = None


def _import_renderer_ahead() -> None:
    """Start importing the renderer (torch) on a thread, so that its second of start-up
    overlaps the preflight's file reads (which release the GIL).  An import that fails
    there fails again, with its real error, where the renderer is imported for good."""
    global _renderer_import  # noqa: PLW0603 - one import per process
    if _RENDERER in sys.modules or (_renderer_import is not None and _renderer_import.is_alive()):
        return

    def load() -> None:
        try:
            importlib.import_module(_RENDERER)
        except BaseException:  # noqa: BLE001 - reported by the import in _renderer()
            pass

    _renderer_import = threading.Thread(target=load, name="focuspull-import")
    _renderer_import.start()


def _join_renderer_import() -> None:
    thread = _renderer_import
    if thread is not None:
        thread.join()


def _filter_image(job: RenderJob):
    """The custom bokeh shape (``--filter IMAGE``) as a grey ``H x W`` array, or None."""
    path = job.aperture.filter_image
    if not path:
        return None
    image = read_image(path, transfer="linear")
    pixels = image.pixels
    names = image.channel_names
    colour = [names.index(c) for c in ("R", "G", "B") if c in names] or [0]
    return pixels[:, :, colour].mean(axis=2)


def _check_device(name: str) -> None:
    """A device the renderer can use, or an InputError saying which to pass."""
    import torch  # noqa: PLC0415

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"unknown device {name!r}", "set 'device' to cpu, cuda or cuda:N", field="device") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r}: CUDA is not available on this machine",
                             "set 'device' to cpu (or run on a machine with an NVIDIA GPU)", field="device")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r}: this machine has {count} CUDA device{'s' if count != 1 else ''}",
                             f"set 'device' to cuda:0 .. cuda:{count - 1}, or cpu", field="device")
        return
    if device.type == "mps" and torch.backends.mps.is_available():
        return
    raise InputError(f"device {name!r} is not supported here", "set 'device' to cpu, cuda or cuda:N",
                     field="device")
