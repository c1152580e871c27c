"""Where a job's frames go, checked before anything renders: channels, no overwriting of
the input or the depth, refuse / resume / overwrite rules, writable directories, the
preview target, and the transfer curve of display-referred output.
"""
from __future__ import annotations

import os
from typing import Optional

from focuspull.errors import InputError
from focuspull.io.atomic import remove_stale_temp_files
from focuspull.io.frames import SequencePattern, format_frame_ranges
from focuspull.io.images import is_complete_frame
from focuspull.io.metadata import FINGERPRINT_KEY
from focuspull.spec.job import RenderJob

_EXR = (".exr", ".sxr", ".mxr")


def output_channels(job: RenderJob, clip) -> tuple[list[str], Optional[str]]:
    """Channel names written, and the depth channel passed through (or None)."""
    names = clip.colour_channels
    if job.output.setup_view:
        names = ["R", "G", "B"]  # a false-colour view: alpha and depth would mislead
    passthrough = None
    pattern = job.output.pattern
    if (pattern and os.path.splitext(pattern)[1].lower() in _EXR and job.output.keep_depth
            and not job.output.setup_view and job.depth.kind != "model" and clip.depth_channel):
        passthrough = clip.depth_channel if job.depth.kind == "channel" else "Z"
    return names + ([passthrough] if passthrough else []), passthrough


def check_no_clobber(job: RenderJob, clip, frames: list[int]) -> None:
    """Refuse outputs that are files this render reads: an image or depth frame of the clip,
    compared as real paths (symlinks and ``..`` resolved).  ``--overwrite`` never allows it."""
    reads = clip.files_read()
    if not reads:
        return
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


def plan_output(job: RenderJob, clip, frames: list[int], names: list[str]) -> tuple[list, list]:
    """``(to_render, skipped)`` after the resume / overwrite rules; refuse collisions."""
    check_preview_target(job)
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
                         "use 'output.resume' to keep finished frames and render the rest, "
                         "or 'output.overwrite' to replace them", field="output.resume")
    shape = (clip.height, clip.width, len(names))
    # An EXR of another render (other lens, the setup view...) is not a finished frame of this one.
    same_render = {FINGERPRINT_KEY: job.fingerprint()} if is_exr(job.output.pattern) else None
    skipped = [f for f in existing if is_complete_frame(out.path(f), shape, names, same_render)]
    return [f for f in frames if f not in set(skipped)], skipped


def check_preview_target(job: RenderJob) -> None:
    """Same rule as output frames: an existing preview is replaced only when asked."""
    preview = job.output.preview
    if not preview:
        return
    preview_dir = os.path.dirname(os.path.abspath(preview))
    try:
        os.makedirs(preview_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the preview directory {preview_dir}: {exc.strerror}",
                         "give 'output.preview' a path in a writable directory", field="output.preview") from None
    if os.path.exists(preview) and not (job.output.overwrite or job.output.resume):
        raise InputError(f"the preview {preview} already exists",
                         "use 'output.overwrite' to replace it, 'output.resume' to rebuild it over "
                         "the whole range, or give another 'output.preview' path", field="output.preview")


def is_exr(path: Optional[str]) -> bool:
    return bool(path) and os.path.splitext(path)[1].lower() in _EXR


def output_transfer(job: RenderJob, clip) -> Optional[str]:
    """Curve of the written colour: EXR stays scene-linear; other formats get the input's own
    curve, so a display-referred plate (rec709 PNG) comes back in that curve.  Linear input
    written to a display format gets that format's default (sRGB) rather than a linear PNG."""
    if not job.output.pattern or is_exr(job.output.pattern):
        return None
    return clip.transfer if clip.transfer != "linear" else None
