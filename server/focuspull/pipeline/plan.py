"""The job resolved once: what each stage reads, frame by frame.

A :class:`~focuspull.spec.job.RenderJob` is validated at the edge (the spec) and resolved
here, once per run, into the sections the stages read:

* :class:`LensPlan` -- the optics of each frame (:class:`FrameOptics`: focus disparity and
  ``k_px``).  Lens keyframes are evaluated and the focus distance converted to disparity
  once per frame; with a fixed focus (distance or disparity) every frame is resolved before
  the first renders, so an impossible frame fails now, not on frame 87.
* :class:`RenderSection` -- what the render stage needs (aperture and CoC cap per frame,
  highlights, layer spacing, device, setup view), built once.
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
from focuspull.stages.lens import ArtisticLens, LinearLens, ThinLens, in_focus_band
from focuspull.stages.refine import refiner_reach

# Focus on "infinity" (a point on the sky, disparity 0) is a focus distance this far away.
FAR_FOCUS_DISPARITY = 1e-6
FIXED_FOCUS_MODES = ("distance", "disparity")


@dataclass(frozen=True)
class FrameOptics:
    """One frame's optics: ``coc_px = k_px * (focus_disparity - disparity)``, zero inside the
    disparity band ``in_focus`` (ZDefocus ``dof``; ``(d, d)`` when there is none)."""

    focus_disparity: float
    k_px: float
    in_focus: tuple = (0.0, 0.0)


class LensPlan:
    """The lens of every frame, each resolved once (keyframes evaluated, focus converted)."""

    def __init__(self, job: RenderJob, image_width_px: int) -> None:
        """``image_width_px``: the width of the film back in pixels, i.e. the *display
        window* (overscan or a crop in the stored pixels does not change the lens)."""
        self.lens, self.focus = job.lens, job.focus
        self.depth_math = job.depth.depth_math
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
        optics = self._lens(frame, picked_disparity)
        band = in_focus_band(optics.focus_disparity, self.focus.dof.value_at(frame), self.depth_math)
        return FrameOptics(optics.focus_disparity, optics.k_px, band)

    def _lens(self, frame: int, picked_disparity: Optional[float]) -> FrameOptics:
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
    """The render stage's part of the job, built once per run (torch loads here).

    The aperture and the CoC cap are animatable: :meth:`aperture_at` and
    :meth:`max_radius_at` evaluate them per frame (blade counts hold from key to key)."""

    job_aperture: object
    filter_image: object
    highlights: object
    max_size_px: object
    plane_spacing_px: float
    device: str
    setup_view: bool

    @classmethod
    def from_job(cls, job: RenderJob, filter_image=None) -> "RenderSection":
        from focuspull.stages.render.layered import Highlights  # noqa: PLC0415

        h = job.highlights
        section = cls(job_aperture=job.aperture, filter_image=filter_image,
                      highlights=Highlights(h.threshold, h.gain) if h.threshold is not None else None,
                      max_size_px=job.lens.max_size_px, plane_spacing_px=job.plane_spacing_px,
                      device=job.device, setup_view=job.output.setup_view)
        for frame in job.frames or (0,):  # a bad aperture fails before the first frame renders
            section.aperture_at(frame)
        return section

    def aperture_at(self, frame: int, pixel_aspect: float = 1.0):
        """The :class:`~focuspull.stages.aperture.Aperture` of ``frame`` for a plate of this
        pixel aspect (anamorphic: the kernel is squeezed so bokeh is round after desqueeze)."""
        from focuspull.stages.aperture import Aperture  # noqa: PLC0415

        a = self.job_aperture
        return Aperture(int(held_at(a.blades, frame)), a.rotation_deg.value_at(frame), a.roundness.value_at(frame),
                        image=self.filter_image, aspect=a.aspect.value_at(frame), pixel_aspect=pixel_aspect)

    def max_radius_at(self, frame: int) -> Optional[float]:
        return self.max_size_px.value_at(frame) if self.max_size_px is not None else None


def held_at(animated, frame: int) -> float:
    """The value of the last key at or before ``frame`` (the first key before it): counts
    such as blades step from key to key instead of passing through fractions."""
    keys = animated.keys
    value = keys[0][1]
    for key_frame, key_value in keys:
        if key_frame <= frame:
            value = key_value
    return value


def temporal_reach(job: RenderJob) -> int:
    """Clip frames on each side of a rendered frame that its render reads: the depth
    stabiliser's reach, plus the focus smoothing's (a neighbour's focus reads its
    stabilised depth).  A depth model reads the whole clip (per-clip normalisation)."""
    reach = stabiliser_reach(job.depth.stabilise_window)
    if job.focus.mode in ("point", "matte"):
        reach += smoothing_reach(job.focus.smoothing_window)
    if job.refine.model_dir is not None and not job.output.setup_view:
        reach += refiner_reach(job.refine.model_dir)  # its windows read the neighbours' renders
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
