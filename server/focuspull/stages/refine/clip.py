"""Refine a clip one frame at a time, with windows placed over clip indices.

The pipeline driver asks for frame ``i`` of a clip of ``length`` frames; the windows that
cover ``i`` (:func:`~focuspull.stages.refine.tiling.windows_covering`) are run on the inputs
of their frames, which :class:`ClipRefiner` asks for by clip index.  Because the windows
depend only on the clip, never on the frames a run renders, a chunked render gives the
same pixels as one run.  The last two windows are kept (consecutive frames share them).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from focuspull.stages.refine.pipeline import RefinerPipeline, apply_correction
from focuspull.stages.refine.tiling import windows_covering

#: ``inputs(i) -> (all_in_focus H x W x C, coc_px H x W, classical H x W x C)`` for clip index i.
Inputs = Callable[[int], tuple]


class ClipRefiner:
    """Refined frames of one clip, on demand."""

    def __init__(self, pipeline: RefinerPipeline, length: int, inputs: Inputs):
        if length < 1:
            raise ValueError(f"a clip has at least one frame, got length {length}")
        self.pipeline, self.length, self.inputs = pipeline, length, inputs
        self._windows: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def reach(self) -> int:
        """How many frames either side of a frame its refinement reads."""
        return self.pipeline.config.window - 1

    def _window(self, a: int, b: int) -> torch.Tensor:
        key = (a, b)
        if key not in self._windows:
            frames = [self.inputs(j) for j in range(a, b)]
            aif, coc, classical = (np.stack([f[k] for f in frames]) for k in range(3))
            if len(self._windows) >= 2:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = self.pipeline.window_correction(aif, coc, classical)
        return self._windows[key]

    def correction(self, i: int) -> torch.Tensor:
        """Cross-faded tone-space correction ``(3, H, W)`` of clip index ``i``."""
        cfg = self.pipeline.config
        total = None
        for a, b, w in windows_covering(i, self.length, cfg.window, cfg.window_overlap):
            part = self._window(a, b)[i - a] * float(w[i - a])
            total = part if total is None else total + part
        return total

    def frame(self, i: int) -> np.ndarray:
        """Refined frame at clip index ``i`` (channels of its classical render)."""
        classical = self.inputs(i)[2]
        return apply_correction(classical, self.correction(i))
