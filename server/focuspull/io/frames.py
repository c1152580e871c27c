"""Frame-number patterns and frame ranges, the way Nuke and farm tools spell them.

Pure Python (no OpenImageIO): host applications can use it to build job specs.

Patterns
    ``shot.####.exr``   each ``#`` is one digit of padding (Nuke style)
    ``shot.@@@@.exr``   each ``@`` is one digit of padding (Houdini / Shake style)
    ``shot.%04d.exr``   printf style; ``%d`` means no padding
    ``shot.exr``        a plain path: a single image used for every frame

Numbers are formatted like C ``printf("%0Nd")`` (what Nuke does): frames wider than
the padding are written in full (``#### 12345 -> 12345``) and negative frames carry
their sign inside the width (``#### -5 -> -005``).

Ranges (``parse_frame_range``)
    ``1001-1100``  inclusive range          ``1-100x2``  every 2nd frame (``1-100:2`` too)
    ``1001``       one frame                ``1,5,10-20`` comma-separated list of the above

``1-100:2`` means every 2nd frame here, as ``1-100x2``.  fileseq reads ``:`` as
"staggered" instead: ``1-100:2`` is *every* frame of 1-100, the ``x2`` ones first.  Spell
steps with ``x`` in ranges that other tools read too.
"""
from __future__ import annotations

import math
import os
import re

from focuspull.errors import InputError

# The frame token inside a file name: a run of '#', a run of '@', or %d / %0Nd / %Nd.
_TOKEN = re.compile(r"#+|@+|%(0?)(\d*)d")
_RANGE_ITEM = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:[x:](\d+))?)?$")
RANGE_EXAMPLE = "'1001-1100', '1-100x2', '1001' or '1,5,10-20'"
# A frame list longer than this is almost surely a typo (1001-1100000) and would eat memory.
MAX_FRAMES = 1_000_000
# Widest frame padding accepted (``####``, ``%08d``): 64-bit frame numbers have 19 digits.
# Without a bound, ``%0300000000d`` builds a 300-million-character path per frame.
MAX_PADDING = 20


def _short(text: str, limit: int = 80) -> str:
    """``text`` for a message: hostile inputs can be megabytes long, never echo them whole."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]} ({len(text)} chars)"


class SequencePattern:
    """A numbered image sequence (or a single image) on disk.

    Args:
        pattern: a path whose *file name* holds one frame token (``####``, ``@@@@``,
            ``%04d``), or a plain path to one image.

    ``path(frame)`` gives the file of a frame; ``frames_on_disk()`` lists the frames
    present; ``str(pattern)`` gives the pattern back unchanged.
    """

    def __init__(self, pattern: str) -> None:
        if isinstance(pattern, os.PathLike):
            pattern = os.fspath(pattern)
        if not isinstance(pattern, str) or not pattern.strip():
            raise InputError(f"an image sequence pattern must be a non-empty path, got {_short(repr(pattern))}",
                             "pass e.g. shot.####.exr or shot.%04d.exr")
        self._pattern = pattern
        self.directory, name = os.path.split(pattern)
        tokens = list(_TOKEN.finditer(name))
        if len(tokens) > 1:
            raise InputError(f"sequence pattern {_short(repr(pattern))} has {len(tokens)} frame tokens "
                             f"({_short(', '.join(t.group(0) for t in tokens))}); only one is allowed",
                             "keep one frame token in the file name, e.g. shot.####.exr")
        if _TOKEN.search(self.directory):
            # Per-frame directories are not supported; say so instead of silently
            # treating the token as a literal directory name.
            raise InputError(f"sequence pattern {_short(repr(pattern))} has a frame token in its directory",
                             "put the frame number in the file name, e.g. renders/shot.####.exr")
        if not tokens:
            self.is_single_image = True
            self.prefix, self.suffix, self.padding = name, "", 0
            return
        token = tokens[0]
        self.is_single_image = False
        self.prefix = name[:token.start()]
        self.suffix = name[token.end():]
        text = token.group(0)
        if text[0] in "#@":
            self.padding = len(text)
        else:
            # %d -> no padding; %4d pads with spaces in C, which no pipeline uses for
            # file names, so it is read as zero padding like %04d.
            digits = token.group(2) or "0"
            # Compared as text first: int() of a million-digit string is itself slow.
            self.padding = int(digits) if len(digits.lstrip("0")) <= 3 else MAX_PADDING + 1
        if self.padding > MAX_PADDING:
            raise InputError(f"sequence pattern {_short(repr(pattern))} pads frame numbers to "
                             f"{_short(text, 24)}: more than {MAX_PADDING} digits",
                             f"use a padding of 1 to {MAX_PADDING} digits, e.g. shot.####.exr or shot.%04d.exr")

    # --- naming ----------------------------------------------------------------
    def format_frame(self, frame: int) -> str:
        """The frame number as it appears in file names (``printf('%0Nd')``)."""
        return "%0*d" % (self.padding, int(frame)) if self.padding else "%d" % int(frame)

    def path(self, frame: int) -> str:
        """The file of ``frame``; a single image returns its own path for any frame."""
        if self.is_single_image:
            return self._pattern
        return os.path.join(self.directory, f"{self.prefix}{self.format_frame(frame)}{self.suffix}")

    def frames_on_disk(self) -> list[int]:
        """Sorted frame numbers whose files exist in the pattern's directory.

        Only names this pattern would produce count (``shot.1.exr`` is not frame 1 of
        ``shot.####.exr``).  A single image counts as frame 1 when it exists, as a Nuke
        Read of one still does.
        """
        if self.is_single_image:
            return [1] if os.path.isfile(self._pattern) else []
        directory = self.directory or "."
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        number = re.compile(re.escape(self.prefix) + r"(-?\d+)" + re.escape(self.suffix) + r"\Z")
        frames = set()
        for name in names:
            match = number.match(name)
            if match and self.format_frame(int(match.group(1))) == match.group(1):
                frames.add(int(match.group(1)))
        return sorted(frames)

    def __str__(self) -> str:
        return self._pattern

    def __repr__(self) -> str:
        return f"SequencePattern({self._pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequencePattern) and other._pattern == self._pattern

    def __hash__(self) -> int:
        return hash(self._pattern)


def parse_frame_range(text: str) -> list[int]:
    """Parse a frame range into a sorted list of unique frame numbers.

    Accepts ``"1001-1100"``, ``"1-100x2"`` (or ``"1-100:2"``), ``"1001"``, negative
    frames (``"-10--1"``) and comma-separated lists of those (``"1,5,10-20"``).
    Spaces anywhere are ignored.  Raises :class:`InputError` with an example of valid
    syntax for anything else (empty text, reversed ranges, step 0).
    """
    if not isinstance(text, str):
        raise InputError(f"a frame range must be text, got {type(text).__name__} {_short(repr(text))}",
                         f"pass e.g. {RANGE_EXAMPLE}")
    compact = re.sub(r"\s+", "", text)
    if not compact:
        raise InputError("the frame range is empty", f"pass e.g. {RANGE_EXAMPLE}")
    frames: set[int] = set()
    for item in compact.split(","):
        match = _RANGE_ITEM.match(item)
        if not match:
            raise InputError(f"cannot read frame range {_short(repr(text))} (at {_short(repr(item))})",
                             f"use e.g. {RANGE_EXAMPLE}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last < first:
            raise InputError(f"frame range {_short(repr(item))} ends before it starts",
                             f"write the first frame first, e.g. {last}-{first}")
        if step < 1:
            raise InputError(f"frame range {_short(repr(item))} has step {step}", "use a step of 1 or more, e.g. 1-100x2")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise InputError(f"frame range {_short(repr(text))} has more than {MAX_FRAMES} frames",
                             "check the range for a typo")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def format_frame_ranges(frames) -> str:
    """Compress frame numbers for messages: ``[1004..1010, 1020] -> '1004-1010, 1020'``."""
    ordered = sorted(set(int(f) for f in frames))
    parts = []
    start = prev = None
    for frame in ordered + [None]:
        if start is not None and frame is not None and frame == prev + 1:
            prev = frame
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = frame
    return ", ".join(parts)


def sequence_range(frames_on_disk) -> list[int]:
    """Every frame a sequence should have, given the frames found on disk.

    From the first frame to the last at the sequence's own step (the greatest common divisor
    of the steps between frames: a shot rendered on twos is 1001, 1003, ...), so a frame
    missing in the middle is in the list but not on disk.  Callers that were given no frame
    range render this list, and preflight names the gap instead of skipping it silently.
    """
    frames = sorted(set(int(f) for f in frames_on_disk))
    if len(frames) < 2:
        return frames
    step = 0
    for a, b in zip(frames, frames[1:]):
        step = math.gcd(step, b - a)
    return list(range(frames[0], frames[-1] + 1, step))


def as_pattern(pattern) -> SequencePattern:
    """Accept a :class:`SequencePattern` or anything :class:`SequencePattern` accepts."""
    return pattern if isinstance(pattern, SequencePattern) else SequencePattern(pattern)


__all__ = ["SequencePattern", "parse_frame_range", "format_frame_ranges", "as_pattern",
           "MAX_FRAMES", "MAX_PADDING", "sequence_range"]
