"""Shared helpers of the Nuke node tests: a plate in Nuke channel names, a node over it."""
from __future__ import annotations

import numpy as np


def plate(frames, h=24, w=32, seed=1):
    """{frame: {"rgba.red": ..., "depth.Z": ...}}: premultiplied colour, depth 1..6 m."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in frames:
        rgba = rng.random((h, w, 4)).astype(np.float32)
        rgba[..., :3] *= rgba[..., 3:]
        depth = np.linspace(1.0, 6.0, h * w, dtype=np.float32).reshape(h, w)
        out[f] = {"rgba.red": rgba[..., 0], "rgba.green": rgba[..., 1], "rgba.blue": rgba[..., 2],
                  "rgba.alpha": rgba[..., 3], "depth.Z": depth}
    return out


def make_node(nuke, frames, h=24, w=32, seed=1, first=None, last=None):
    """A FocusPull node (created the way the menu does) fed by a fake source."""
    from focuspull_nuke import node as fp

    src = nuke.fake_source("Read1", plate(frames, h, w, seed), w, h)
    n = fp.create()
    n.setInput(0, src)
    n["first_frame"].setValue(first if first is not None else min(frames))
    n["last_frame"].setValue(last if last is not None else max(frames))
    n["fstop"].setValue(1.4)
    n["center"].setValue(2.0)
    n["half"].setValue(False)
    return n
