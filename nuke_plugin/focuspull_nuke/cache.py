"""The node's cache folder: input frames from the hidden Write, results per job hash.

Layout under the cache root (``FOCUSPULL_CACHE``)::

    <root>/<node>/input/plate.####.exr        the hidden Write's frames (rewritten each Render)
    <root>/<node>/<key>/dof.####.exr          results of one knob state

``key`` hashes the job's fingerprint (``RenderJob.fingerprint``: every setting that
changes pixels, not the frame list or paths) with a digest of each input frame's pixels
over the range.  Unchanged knobs over unchanged input find their frames and render
nothing; a changed knob, input pixel or range gives a new key and renders again (temporal
stages read neighbouring frames, so a frame's result depends on the whole range's input).  Frames appear atomically (the server writes them
through a temp file and rename, and so does :func:`focuspull_nuke.exr.write_exr`), so a
file that exists is complete.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Iterable, Mapping

from focuspull.spec.job import RenderJob

from focuspull_nuke.exr import pixel_digest  # noqa: F401 - the cache's frame digest

INPUT_NAME = "plate.####.exr"
OUTPUT_NAME = "dof.####.exr"


def node_dir(root: str, node_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node_name) or "FocusPull"
    return os.path.join(os.path.abspath(os.path.expanduser(root)), safe)


def input_pattern(root: str, node_name: str) -> str:
    return os.path.join(node_dir(root, node_name), "input", INPUT_NAME)


def output_pattern(root: str, node_name: str, key: str) -> str:
    return os.path.join(node_dir(root, node_name), key, OUTPUT_NAME)


def frame_path(pattern: str, frame: int) -> str:
    return pattern.replace("####", f"{frame:04d}")


def render_key(job: Mapping, digests: Mapping[int, str]) -> str:
    """The cache key of a knob state over some input frames."""
    h = hashlib.sha256(RenderJob.from_dict(job).fingerprint().encode())
    for frame in sorted(digests):
        h.update(f"{frame}:{digests[frame]};".encode())
    return h.hexdigest()[:16]


def missing_frames(pattern: str, frames: Iterable[int]) -> list[int]:
    return [f for f in frames if not os.path.isfile(frame_path(pattern, f))]
