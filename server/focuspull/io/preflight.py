"""Check a whole sequence before any rendering starts, from file headers only.

One :class:`SequenceError` lists every problem found (missing frames as compact
ranges, files of another size, files without the depth channel), so a wrangler
fixes them in one go instead of meeting them one frame at a time on the farm.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import OpenImageIO as oiio

from focuspull.errors import Cancelled, InputError, SequenceError
from focuspull.io.channels import find_depth_channel
from focuspull.io.frames import as_pattern, format_frame_ranges
from focuspull.io.metadata import metadata_from_spec

# Problems of one kind listed by file name before "and N more".
MAX_LISTED = 5


@dataclass(frozen=True)
class SequenceInfo:
    """What preflight learned: the sequence's size and channels and where depth is.

    ``width``/``height`` are the data window of every frame; ``depth_channel`` is
    the channel to read, from ``depth_pattern`` when that is set, else from the
    image sequence itself; ``None`` only when depth was not required and not found.
    """

    width: int
    height: int
    channel_names: list[str]
    depth_channel: str | None
    metadata_of_first: dict
    frames: list[int] = field(default_factory=list)
    depth_pattern: str | None = None
    depth_channel_names: list[str] | None = None


@dataclass
class _Header:
    path: str
    width: int
    height: int
    channel_names: list[str]
    metadata: dict


def _read_headers(pattern, frames, problems: list[str], label: str) -> dict[int, _Header]:
    """Headers of every existing, openable frame; missing/unreadable ones go to problems."""
    headers: dict[int, _Header] = {}
    missing, unreadable = [], []
    by_path: dict[str, _Header] = {}  # a single image serves every frame: open it once
    for frame in frames:
        path = pattern.path(frame)
        if path in by_path:
            headers[frame] = by_path[path]
            continue
        if not os.path.isfile(path):
            missing.append(frame)
            continue
        inp = oiio.ImageInput.open(path)
        if inp is None:
            unreadable.append(f"{os.path.basename(path)} ({oiio.geterror()})")
            continue
        try:
            spec = inp.spec()
            headers[frame] = by_path[path] = _Header(path, spec.width, spec.height,
                                                     list(spec.channelnames), metadata_from_spec(spec))
        finally:
            inp.close()
    if missing:
        problems.append(f"{label}: {len(missing)} missing frame{'s' if len(missing) > 1 else ''} "
                        f"{format_frame_ranges(missing)} (pattern {pattern})")
    if unreadable:
        problems.append(f"{label}: cannot open {_listing(unreadable)}")
    return headers


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _size_problems(headers: dict[int, _Header], width: int, height: int, label: str, reference: str) -> list[str]:
    wrong = [f"{os.path.basename(h.path)} is {h.width}x{h.height}" for h in headers.values()
             if (h.width, h.height) != (width, height)]
    if not wrong:
        return []
    return [f"{label}: {len(wrong)} frame{'s' if len(wrong) > 1 else ''} not {width}x{height} "
            f"like {reference}: {_listing(wrong)}"]


def _depth_problems(headers: dict[int, _Header], channel: str, label: str) -> list[str]:
    lacking = [f"{os.path.basename(h.path)} (channels {','.join(h.channel_names)})" for h in headers.values()
               if channel not in h.channel_names]
    if not lacking:
        return []
    return [f"{label}: depth channel {channel!r} missing from {_listing(lacking)}"]


# The channels a render takes its picture from (Image.rgba): every frame must have the same.
_PICTURE_CHANNELS = ("R", "G", "B", "Y", "A")


def _picture_channels(names: list[str]) -> list[str]:
    return [c for c in _PICTURE_CHANNELS if c in names]


def _picture_problems(headers: dict[int, _Header], first: _Header, label: str) -> list[str]:
    expected = _picture_channels(first.channel_names)
    odd = [f"{os.path.basename(h.path)} ({','.join(_picture_channels(h.channel_names)) or 'none'})"
           for h in headers.values() if _picture_channels(h.channel_names) != expected]
    if not odd:
        return []
    return [f"{label}: {len(odd)} frame{'s' if len(odd) > 1 else ''} with other colour/alpha channels than "
            f"{os.path.basename(first.path)} ({','.join(expected) or 'none'}): {_listing(odd)}"]


def _channel_problems(headers: dict[int, _Header], channels: list[str], label: str) -> list[str]:
    problems = []
    for channel in channels:
        lacking = [f"{os.path.basename(h.path)} (channels {','.join(h.channel_names)})"
                   for h in headers.values() if channel not in h.channel_names]
        if lacking:
            problems.append(f"{label}: channel {channel!r} missing from {_listing(lacking)}")
    return problems


def preflight(pattern, frames, depth_channel: str | None = None, depth_pattern=None, *,
              depth_required: bool = True, required_channels=()) -> SequenceInfo:
    """Check that a render can read every frame it needs; raise one error listing all problems.

    Args:
        pattern: the image sequence (``shot.####.exr`` or a :class:`SequencePattern`).
        frames: the frame numbers to render (e.g. from ``parse_frame_range``).
        depth_channel: the user's ``--depth-channel``; auto-detected when ``None``.
        depth_pattern: a separate depth sequence (same frames, same size), or ``None``
            when depth is a channel of the images.
        depth_required: when False (depth comes from a model) a missing depth channel
            is not an error and ``depth_channel`` is ``None``.
        required_channels: other channels every image frame must have (a focus matte).

    Every frame must also have the same colour/alpha channels (R,G,B / Y, A) as the
    first: a frame without the alpha of its neighbours cannot join the clip.

    Only headers are opened.  Raises :class:`SequenceError`.
    """
    frames = sorted(set(int(f) for f in frames))
    if not frames:
        raise InputError("no frames to render", "pass a frame range, e.g. --frames 1001-1100")
    pattern = as_pattern(pattern)
    problems: list[str] = []
    headers = _read_headers(pattern, frames, problems, "images")
    if not headers:
        raise SequenceError("cannot render: " + "; ".join(problems),
                            "check the input pattern and the frame range (list the directory)")
    first = headers[min(headers)]
    first_name = os.path.basename(first.path)
    problems += _size_problems(headers, first.width, first.height, "images", first_name)
    problems += _picture_problems(headers, first, "images")
    problems += _channel_problems(headers, list(required_channels), "images")

    depth_names = None
    found = None
    if depth_pattern is not None:
        depth_seq = as_pattern(depth_pattern)
        depth_headers = _read_headers(depth_seq, frames, problems, "depth")
        problems += _size_problems(depth_headers, first.width, first.height, "depth", first_name)
        if depth_headers:
            depth_first = depth_headers[min(depth_headers)]
            depth_names = depth_first.channel_names
            try:
                found = find_depth_channel(depth_names, depth_channel, path=depth_first.path, depth_only=True)
            except SequenceError as exc:
                problems.append(f"depth: {exc.message}")
            else:
                problems += _depth_problems(depth_headers, found, "depth")
    else:
        try:
            found = find_depth_channel(first.channel_names, depth_channel, path=first.path)
        except SequenceError as exc:
            if depth_required or depth_channel:
                problems.append(f"images: {exc.message}")
        else:
            problems += _depth_problems(headers, found, "images")

    if problems:
        raise SequenceError("cannot render " + str(pattern) + ": " + "; ".join(problems),
                            "fix or re-render the files listed (or narrow --frames, or pass --depth-channel / "
                            "--depth) and run again")
    return SequenceInfo(first.width, first.height, first.channel_names, found, first.metadata, frames,
                        str(depth_pattern) if depth_pattern is not None else None, depth_names)


def read_channel(path: str, channel: str):
    """One channel of the first subimage of ``path`` as ``H x W`` float32, reading nothing else
    into memory; a :class:`SequenceError` saying what is wrong when the file is truncated or
    corrupt (OpenImageIO decodes every chunk, so a missing one is found here)."""
    import numpy as np  # noqa: PLC0415

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise SequenceError(f"cannot open {os.path.basename(path)}: {oiio.geterror()}", "re-render or re-copy it")
    try:
        spec = inp.spec()
        names = list(spec.channelnames)
        if channel not in names:
            raise SequenceError(f"{os.path.basename(path)} has no channel {channel!r}", "pass --depth-channel")
        c = names.index(channel)
        pixels = inp.read_image(0, 0, c, c + 1, "float")
        if pixels is None or inp.has_error:
            raise SequenceError(f"{os.path.basename(path)} is truncated or corrupt "
                                f"({(inp.geterror() or oiio.geterror()).strip()[:200]})",
                                "re-render or re-copy it")
    finally:
        inp.close()
    return np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width)


def check_depth_values(depth_of, frames, check, cancelled=None) -> None:
    """Read the depth of every frame and run ``check(frame, depth)`` on it, before any render.

    ``depth_of(frame) -> H x W`` reads one frame's depth (:func:`read_channel` for files: only
    that channel); ``check`` raises an :class:`InputError` for values the render would refuse
    (NaN, negative, zero distance...).  One :class:`SequenceError` lists every bad frame, so a
    NaN on frame 87 stops the job before frame 1 is rendered, not after 86 frames.
    ``cancelled()`` is polled between frames (a long sequence is a long check).
    """
    problems: list[str] = []
    bad_frames: list[int] = []
    for frame in frames:
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled while checking the depth of every frame", "nothing was rendered")
        try:
            check(frame, depth_of(frame))
        except InputError as exc:
            bad_frames.append(frame)
            message = exc.message if exc.message.startswith("frame ") else f"frame {frame}: {exc.message}"
            problems.append(message)
    if problems:
        shown = "; ".join(problems[:MAX_LISTED])
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise SequenceError(f"bad depth in {len(bad_frames)} frame{'s' if len(bad_frames) > 1 else ''} "
                            f"({format_frame_ranges(bad_frames)}), found before rendering: {shown}{more}",
                            "fix or re-render those frames (or pass --bad-depth far for NaN/negative depth, "
                            "or narrow --frames) and run again")


__all__ = ["preflight", "SequenceInfo", "check_depth_values", "read_channel"]
