"""Frame-sequence names as the hosts spell them (pure Python).

* focuspull jobs: ``shot.####.exr`` (``#`` = one padded digit);
* Fusion's Saver: ``Clip = shot.0000.exr`` writes ``shot.1001.exr`` (the digits in the
  name set the padding);
* Resolve's Media Pool: ``shot.[1001-1100].exr`` in the ``File Path`` clip property, and
  ``ImportMedia`` takes a printf pattern ``shot.%04d.exr`` with ``StartIndex``/``EndIndex``;
* Resolve's render: ``CustomName`` followed by the frame number, found by listing the folder.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

_BRACKETS = re.compile(r"\[(\d+)-(\d+)\]")
IMAGE_EXTENSIONS = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".cin", ".tga")


@dataclass(frozen=True)
class Sequence:
    """``folder/name.####.exr``: ``head`` + the padded frame number + ``tail``."""

    head: str
    padding: int
    tail: str

    @property
    def pattern(self) -> str:
        return f"{self.head}{'#' * self.padding}{self.tail}"

    @property
    def printf(self) -> str:
        return f"{self.head}%0{self.padding}d{self.tail}"

    def path(self, frame: int) -> str:
        return f"{self.head}{frame:0{self.padding}d}{self.tail}"

    def fusion_clip(self) -> str:
        """What a Saver's ``Clip`` input needs to write this sequence."""
        return self.path(0)

    def frames_on_disk(self) -> list[int]:
        folder, head = os.path.split(self.head)
        found = re.compile(re.escape(head) + r"(\d{%d,})" % self.padding + re.escape(self.tail) + "$")
        try:
            names = os.listdir(folder or ".")
        except FileNotFoundError:
            return []
        frames = []
        for name in names:
            m = found.match(name)
            if m and (len(m.group(1)) == self.padding or not m.group(1).startswith("0")):
                frames.append(int(m.group(1)))
        return sorted(frames)


def from_resolve_path(path: str) -> Optional[tuple[Sequence, int, int]]:
    """``/p/shot.[1001-1100].exr`` -> (Sequence, 1001, 1100); None when not a sequence."""
    m = None
    for m in _BRACKETS.finditer(path):
        pass
    if m is None or os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        return None
    first, last = m.group(1), m.group(2)
    return Sequence(path[:m.start()], len(first), path[m.end():]), int(first), int(last)


def find_rendered(folder: str, name: str, extension: str = ".exr") -> Optional[tuple[Sequence, list[int]]]:
    """The sequence a render named ``name`` left in ``folder`` (``name_00086400.exr``,
    ``name.0001.exr``, ``name00001.exr``...) and its frame numbers, or None."""
    found = re.compile(re.escape(name) + r"([._]?)(\d+)" + re.escape(extension) + "$")
    matches = {}
    for entry in os.listdir(folder):
        m = found.match(entry)
        if m:
            matches.setdefault((m.group(1), len(m.group(2))), []).append(int(m.group(2)))
    if not matches:
        return None
    (sep, padding), frames = max(matches.items(), key=lambda kv: len(kv[1]))
    return Sequence(os.path.join(folder, name + sep), padding, extension), sorted(frames)
