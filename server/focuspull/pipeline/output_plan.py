"""Where a job's frames go, checked before anything renders: channels, no overwriting of
the input or the depth, refuse / resume / overwrite rules, writable directories, the
preview target, the colour space of display-referred output, and what an EXR frame
carries back: every channel and part of the input, its metadata and its compression.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from focuspull.errors import InputError
from focuspull.io.atomic import remove_stale_temp_files
from focuspull.io.frames import SequencePattern, format_frame_ranges
from focuspull.io.channels import is_depth_like
from focuspull.io.images import Part, is_complete_frame
from focuspull.io.metadata import FINGERPRINT_KEY
from focuspull.spec.job import RenderJob

_EXR = (".exr", ".sxr", ".mxr")


_RENDERED = ("R", "G", "B", "A")


def output_channels(job: RenderJob, clip) -> tuple[list[str], Optional[str]]:
    """Channel names of the first part written, and the depth channel passed through (or None).

    The rendered colour channels, then -- for EXR output -- the depth, then every other
    channel of the input's first part (IDs, AOVs, mattes) passed through untouched."""
    names = clip.colour_channels
    if job.output.setup_view:
        return ["R", "G", "B"], None  # a false-colour view: alpha, depth and AOVs would mislead
    passthrough = None
    pattern = job.output.pattern
    if (pattern and os.path.splitext(pattern)[1].lower() in _EXR and job.output.keep_depth
            and job.depth.kind != "model" and clip.depth_channel):
        passthrough = clip.depth_channel if job.depth.kind == "channel" else "Z"
    extra = []
    if is_exr(pattern) and hasattr(clip, "other_parts"):  # frames on disk (in-band frames carry RGBA only)
        grey = not all(c in clip.channel_names for c in "RGB")  # Y was spread to R,G,B
        extra = [n for n in clip.channel_names
                 if n not in _RENDERED and n != passthrough and not (grey and n == "Y")
                 and not (n == clip.depth_channel and job.depth.kind == "channel")]
    return names + ([passthrough] if passthrough else []) + extra, passthrough


def rendered_channel_groups(job: RenderJob, clip) -> list[list[str]]:
    """The input channels ``output.channels`` asks to render, grouped (at most 3 per group,
    one layer per group) for the renderer.  Items are channel names or layer names
    (``diffuse`` = ``diffuse.R,G,B``); an unknown one is an :class:`InputError`."""
    text = job.output.channels
    if not text or job.output.setup_view:
        return []
    available = list(getattr(clip, "channel_names", []))
    chosen: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        matches = [item] if item in available else [n for n in available if n.startswith(item + ".")]
        if not matches:
            raise InputError(f"channel or layer {item!r} of 'output.channels' is not in the input; channels are "
                             f"{','.join(available)}", "name channels or layers that are there",
                             field="output.channels")
        chosen += [n for n in matches if n not in chosen and n not in _RENDERED and n != clip.depth_channel]
    groups: dict[str, list[str]] = {}
    for name in chosen:
        groups.setdefault(name.rpartition(".")[0], []).append(name)
    return [members[i:i + 3] for members in groups.values() for i in range(0, len(members), 3)]


def display_window(clip, frame: int) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` of the display window (the film back) relative to the stored
    pixels (data window, top-left origin): overscan makes x, y negative; a crop positive."""
    meta = clip.metadata(frame)
    if "full_width" not in meta or not meta.get("full_width"):
        return 0, 0, clip.width, clip.height
    return (int(meta["full_x"]) - int(meta.get("x", 0)), int(meta["full_y"]) - int(meta.get("y", 0)),
            int(meta["full_width"]), int(meta["full_height"]))


def output_compression(job: RenderJob, clip) -> str:
    """The EXR compression: as told, else the input EXR's own (PIZ stays PIZ), else zip."""
    if job.output.compression:
        return job.output.compression
    if not hasattr(clip, "other_parts") or not is_exr(job.input.pattern):
        return "zip"
    from focuspull.spec.compression import check_compression  # noqa: PLC0415

    stated = clip.metadata(clip.frames[0]).get("compression", "")
    try:
        return check_compression(stated) if stated else "zip"
    except InputError:
        return "zip"  # a compression this OpenEXR cannot write: the safe lossless default


def frame_parts(job: RenderJob, clip, frame: int, image, names: list[str], passthrough: Optional[str],
                fingerprint: dict, rendered: Optional[dict] = None) -> list[Part]:
    """The parts of one output frame: the render (+ depth + the input's other channels, with
    their own pixel formats; those in ``rendered`` -- ``output.channels`` -- as rendered),
    then the input's other parts as they are, each with its metadata (attributes, part
    name); the first part gets the render's fingerprint."""
    rendered = rendered or {}
    metadata = {k: v for k, v in clip.metadata(frame).items() if k != FINGERPRINT_KEY}
    metadata.update(fingerprint)
    planes = [image]
    if passthrough:
        planes.append(clip.depth(frame)[:, :, None])
    extra = names[image.shape[2] + (1 if passthrough else 0):]
    formats = {}
    if extra or passthrough:
        source = clip.image(frame) if hasattr(clip, "image") else None
        if source is not None:
            stored = dict(zip(source.channel_names, source.metadata.get("channel_formats", [])))
            for name in extra:
                plane = rendered[name] if name in rendered else source.channel(name)
                planes.append(np.asarray(plane, np.float32)[:, :, None])
                formats[name] = stored.get(name, "float")
            if passthrough and passthrough in stored and job.depth.kind == "channel":
                formats[passthrough] = stored[passthrough]
    if passthrough and passthrough not in formats and is_depth_like(passthrough):
        formats[passthrough] = "float"
    parts = [Part(np.concatenate(planes, axis=2) if len(planes) > 1 else image, list(names), metadata, formats)]
    if is_exr(job.output.pattern) and not job.output.setup_view and hasattr(clip, "other_parts"):
        for other in clip.other_parts(frame):
            stored = other.metadata.get("channel_formats", [])
            parts.append(Part(other.pixels, other.channel_names,
                              {k: v for k, v in other.metadata.items() if k != FINGERPRINT_KEY},
                              dict(zip(other.channel_names, stored))))
    return parts


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
    """Colour space of the written colour: EXR stays in the scene-linear working space; other
    formats get ``colour.output_space``, else the input's own space, so a display-referred or
    log plate (rec709 PNG, LogC3 DPX) comes back encoded as it came.  Linear input written to
    a display format gets that format's default (sRGB) rather than a linear PNG."""
    if not job.output.pattern or is_exr(job.output.pattern):
        return None
    if job.colour.output_space:
        return job.colour.output_space
    return clip.transfer if clip.transfer != "linear" else None
