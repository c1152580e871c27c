"""The job resolved once: what each stage reads, frame by frame.

A :class:`~focuspull.spec.job.RenderJob` is validated at the edge (the spec) and resolved
here, once per run, into the sections the stages read:

* :class:`LensPlan` -- the optics of each frame (:class:`FrameOptics`: focus disparity and
  ``k_px``).  Lens keyframes are evaluated and the focus distance converted to disparity
  once per frame; with a fixed focus (distance or disparity) every frame is resolved before
  the first renders, so an impossible frame fails now, not on frame 87.
* :class:`RenderSection` -- what the render stage needs (aperture, highlights, CoC cap,
  layer spacing, device, setup view), built once.
* :func:`temporal_reach` / :func:`frames_read` -- how far each temporal stage looks beyond a
  rendered frame, declared once and used by the clip's preflight, chunking and the farm.

Signed CoC of a pixel = ``k_px * (focus_disparity - disparity)`` (docs/renderer.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from focuspull.errors import LensError
from focuspull.spec.job import RenderJob
from focuspull.stages.depth.stabilise import stabiliser_reach
from focuspull.stages.focus import smoothing_reach
from focuspull.stages.lens import ArtisticLens, LinearLens, ThinLens

# Focus on "infinity" (a point on the sky, disparity 0) is a focus distance this far away.
FAR_FOCUS_DISPARITY = 1e-6
FIXED_FOCUS_MODES = ("distance", "disparity")


@dataclass(frozen=True)
class FrameOptics:
    """One frame's optics: ``coc_px = k_px * (focus_disparity - disparity)``."""

    focus_disparity: float
    k_px: float


class LensPlan:
    """The lens of every frame, each resolved once (keyframes evaluated, focus converted)."""

    def __init__(self, job: RenderJob, image_width_px: int) -> None:
        self.lens, self.focus = job.lens, job.focus
        self.width = image_width_px
        self.fixed_focus = job.focus.mode in FIXED_FOCUS_MODES
        self._optics: dict[int, FrameOptics] = {}

    def preflight(self, frames: list[int]) -> None:
        """With a fixed focus, resolve every frame now (a LensError names the frame)."""
        if self.fixed_focus:
            for frame in frames:
                self.at(frame)

    def at(self, frame: int, picked_disparity: Optional[float] = None) -> FrameOptics:
        """The optics of ``frame``; ``picked_disparity`` is the focus a point or matte picked
        on that frame (unused with a fixed focus)."""
        if frame not in self._optics:
            self._optics[frame] = self._resolve(frame, picked_disparity)
        return self._optics[frame]

    def _resolve(self, frame: int, picked_disparity: Optional[float]) -> FrameOptics:
        focus, lens = self.focus, self.lens
        distance_m = None
        if focus.mode == "distance":
            distance_m = focus.distance_m.value_at(frame)
            disparity = 1.0 / distance_m
        elif focus.mode == "disparity":
            disparity = focus.disparity.value_at(frame)
        elif picked_disparity is None:
            raise ValueError(f"frame {frame}: focus mode {focus.mode!r} needs the picked disparity")
        else:
            disparity = picked_disparity
        if lens.mode == "physical":
            if distance_m is None:
                disparity = max(disparity, FAR_FOCUS_DISPARITY)
                distance_m = 1.0 / disparity
            try:
                thin = ThinLens(lens.focal_length_mm.value_at(frame), lens.fstop.value_at(frame),
                                lens.sensor_width_mm.value_at(frame), distance_m, cg_camera=lens.cg_camera)
            except LensError as exc:
                raise LensError(f"frame {frame}: {exc.message}", exc.hint, field="focus.distance_m") from None
            return FrameOptics(disparity, thin.k_px(self.width))
        if lens.size_px is not None:
            if disparity <= 0:
                raise LensError(f"frame {frame}: focus is at infinity (disparity {disparity:g}); "
                                "'lens.size_px' is the blur at infinity, which would then be 0",
                                "focus on something nearer, or give the blur as 'lens.k'", field="lens.size_px")
            return FrameOptics(disparity, ArtisticLens(lens.size_px.value_at(frame), disparity).k_px(self.width))
        return FrameOptics(disparity, LinearLens(lens.k.value_at(frame), disparity).k_px(self.width))


@dataclass(frozen=True)
class RenderSection:
    """The render stage's part of the job, built once per run (torch loads here)."""

    aperture: object
    highlights: object
    max_radius_px: Optional[float]
    plane_spacing_px: float
    device: str
    setup_view: bool

    @classmethod
    def from_job(cls, job: RenderJob) -> "RenderSection":
        from focuspull.stages.aperture import Aperture  # noqa: PLC0415
        from focuspull.stages.render.layered import Highlights  # noqa: PLC0415

        a, h = job.aperture, job.highlights
        return cls(aperture=Aperture(a.blades, a.rotation_deg, a.roundness),
                   highlights=Highlights(h.threshold, h.gain) if h.threshold is not None else None,
                   max_radius_px=job.lens.max_size_px, plane_spacing_px=job.plane_spacing_px,
                   device=job.device, setup_view=job.output.setup_view)


def temporal_reach(job: RenderJob) -> int:
    """Clip frames on each side of a rendered frame that its render reads: the depth
    stabiliser's reach, plus the focus smoothing's (a neighbour's focus reads its
    stabilised depth).  A depth model reads the whole clip (per-clip normalisation)."""
    reach = stabiliser_reach(job.depth.stabilise_window)
    if job.focus.mode in ("point", "matte"):
        reach += smoothing_reach(job.focus.smoothing_window)
    return reach


def frames_read(job: RenderJob, clip_frames: list[int], frames: list[int]) -> list[int]:
    """Every clip frame a render of ``frames`` reads: the frames themselves, the temporal
    reach around them, the frames a tracked point is followed through, and the whole clip
    for a depth model's normalisation."""
    if job.depth.kind == "model":
        return list(clip_frames)  # normalised over the whole clip
    index = {f: i for i, f in enumerate(clip_frames)}
    reach = temporal_reach(job)
    lo = max(0, min(index[f] for f in frames) - reach)
    hi = min(len(clip_frames) - 1, max(index[f] for f in frames) + reach)
    track_from = job.focus.track_from_frame
    if job.focus.mode == "point" and track_from in index:
        lo, hi = min(lo, index[track_from]), max(hi, index[track_from])
    return sorted(set(clip_frames[lo:hi + 1]) | set(frames))
