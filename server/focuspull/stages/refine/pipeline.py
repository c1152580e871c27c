"""The refiner as a pipeline: all-in-focus + CoC + classical render -> refined frames.

Shaped like a diffusers pipeline (``RefinerPipeline.from_pretrained(dir)``, ``check_inputs``
as the one gate, an output dataclass), but it runs the network once, at its fixed timestep.

Convention: numpy ``float32`` at the boundary, ``(T, H, W, C)`` scene-linear light (RGB or
premultiplied RGBA; alpha passes through from the classical render), CoC ``(T, H, W)`` signed px.

* Any frame size: tiles of the model's ``tile_size`` overlapping by ``tile_overlap``, blended
  with raised-cosine weights; frames smaller than a tile are reflect-padded to one.  Tiles
  run through the network ``tiles_per_batch`` at a time (memory: that many tiles x frames of
  activations).
* Any clip length: windows of ``window`` frames overlapping by ``window_overlap``, cross-faded
  (:mod:`.tiling`); a 1-frame clip is a 1-frame window.
* Precision: fp32 on the CPU; fp16 (or bf16 if asked) on CUDA.
* Exactness: the output is ``classical + (untone(tone(c) + delta) - untone(tone(c)))``, so a
  zero correction returns the classical render bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from focuspull.errors import InputError, ModelError
from focuspull.stages.refine.conditioning import frame_strength, model_inputs, tone, untone
from focuspull.stages.refine.tiling import piece_weights


@dataclass
class RefinerOutput:
    """Attributes:
        frames: ``(T, H, W, C)`` float32 refined scene-linear frames (C of the classical input).
    """

    frames: np.ndarray


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on the CPU, fp16 on CUDA (bf16 where asked explicitly: job field ``refine.precision``)."""
    return torch.float16 if device.type == "cuda" else torch.float32


class RefinerPipeline:
    """Run a :class:`~focuspull.stages.refine.model.RefinerModel` over tiles and windows."""

    def __init__(self, model, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 tiles_per_batch: int = 16):
        if tiles_per_batch < 1:
            raise ValueError(f"tiles_per_batch must be >= 1, got {tiles_per_batch}")
        self.tiles_per_batch = tiles_per_batch
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        model = model.to(self.device)
        if next(model.parameters()).dtype != self.dtype:
            model = model.to(self.dtype)
        self.model = model.eval()
        # bf16 convolutions on the CPU run 1.3x faster again on channels-last input (oneDNN's fast
        # path; measured 2.25 -> 1.74 s for a batch of 16 tiles x 8 frames); other precisions keep
        # the plain layout, so fp32 output is what it always was.
        cpu_bf16 = self.device.type == "cpu" and self.dtype == torch.bfloat16
        self._layout = torch.channels_last if cpu_bf16 else torch.contiguous_format

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> "RefinerPipeline":
        from focuspull.stages.refine.model import RefinerModel  # noqa: PLC0415

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelError(f"no refiner model in {folder} (config.json missing)",
                             "pass the folder written by `focuspull train` (e.g. models/refiner-small)")
        dtype = dtype or default_dtype(torch.device(device))
        try:  # loaded in its precision (no cast of a loaded model)
            model = RefinerModel.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False,
                                                 torch_dtype=dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the refiner from {folder}: {exc}",
                             "re-export it with `focuspull train --export`") from None
        return cls(model, device, dtype)

    @property
    def config(self):
        return self.model.config

    def check_inputs(self, all_in_focus: np.ndarray, coc_px: np.ndarray, classical: np.ndarray) -> None:
        """The one gate: shapes, dtypes and finiteness, with what was expected."""
        for name, a in (("all_in_focus", all_in_focus), ("classical", classical)):
            if a.ndim != 4 or a.shape[-1] not in (3, 4) or not np.issubdtype(a.dtype, np.floating):
                raise InputError(f"{name} must be float T x H x W x 3|4, got {a.dtype} {a.shape}",
                                 "pass scene-linear frames stacked along the first axis")
        if coc_px.shape != all_in_focus.shape[:3] or classical.shape[:3] != all_in_focus.shape[:3]:
            raise InputError(f"shapes differ: all_in_focus {all_in_focus.shape}, coc {coc_px.shape}, "
                             f"classical {classical.shape}", "give every input the same T x H x W")
        for name, a in (("all_in_focus", all_in_focus), ("coc_px", coc_px), ("classical", classical)):
            if not np.isfinite(a).all():
                raise InputError(f"{name} has NaN/inf values", "clean the input before refining")

    def window_correction(self, all_in_focus: np.ndarray, coc_px: np.ndarray,
                          classical: np.ndarray) -> torch.Tensor:
        """Tone-space correction ``(T, 3, H, W)`` (float32, CPU) of one temporal window, tiled in space."""
        cfg = self.config
        t, h, w = coc_px.shape
        dev, dt = self.device, self.dtype
        tile, overlap, m = cfg.tile_size, cfg.tile_overlap, self.model.multiple
        if tile % m:
            raise ModelError(f"tile_size {tile} is not a multiple of {m}", "fix the model's config.json")
        # One (T, 7, H, W) buffer filled in place: the window's inputs are held once, not copied
        # per channel group (bounded memory at 4K: bench/refine_speed.py measures it).
        x = torch.empty((t, 7, h, w), dtype=torch.float32)
        x[:, 0:3] = _tensor(all_in_focus[..., :3]).permute(0, 3, 1, 2)
        x[:, 3:6] = _tensor(classical[..., :3]).permute(0, 3, 1, 2)
        x[:, 6] = _tensor(coc_px)
        strength = frame_strength(x[:, 6:7])  # from the whole frame: every tile sees the same K
        # Frames smaller than a tile are padded (reflect, then edge) to a whole tile.
        ph, pw = (tile - h if h < tile else 0), (tile - w if w < tile else 0)
        if ph or pw:
            x = _pad(x, ph, pw)
        hh, ww = x.shape[-2:]
        out = torch.zeros((t, 3, hh, ww), dtype=torch.float32)
        tiles = [(y0, y1, wy, x0, x1, wx) for y0, y1, wy in piece_weights(hh, tile, overlap)
                 for x0, x1, wx in piece_weights(ww, tile, overlap)]
        with torch.inference_mode():
            # Tiles go through the network in batches (tiles x frames); each sample is normalised
            # on its own (GroupNorm), so batching changes the speed, not the result.
            for i in range(0, len(tiles), self.tiles_per_batch):
                group = tiles[i:i + self.tiles_per_batch]
                feats = torch.cat([model_inputs(c[:, 0:3], c[:, 3:6], c[:, 6:7], strength, cfg.num_bands,
                                                cfg.band_exponent)
                                   for c in (x[..., y0:y1, x0:x1] for y0, y1, _, x0, x1, _ in group)])
                delta = self.model(feats.to(dev, dt, memory_format=self._layout),
                                   strength.repeat(len(group)).to(dev), num_frames=t).float().cpu()
                for k, (y0, y1, wy, x0, x1, wx) in enumerate(group):
                    weight = torch.from_numpy(np.outer(wy, wx).astype(np.float32))
                    out[..., y0:y1, x0:x1] += delta[k * t:(k + 1) * t] * weight
        return out[..., :h, :w]

    def __call__(self, all_in_focus: np.ndarray, coc_px: np.ndarray, classical: np.ndarray) -> RefinerOutput:
        """Refine a whole clip (windows over its frames, cross-faded)."""
        all_in_focus, coc_px, classical = (np.asarray(a) for a in (all_in_focus, coc_px, classical))
        self.check_inputs(all_in_focus, coc_px, classical)
        from focuspull.stages.refine.clip import ClipRefiner  # noqa: PLC0415 - it builds on this module

        refiner = ClipRefiner(self, coc_px.shape[0], lambda i: (all_in_focus[i], coc_px[i], classical[i]))
        return RefinerOutput(np.stack([refiner.frame(i) for i in range(coc_px.shape[0])]))


def apply_correction(classical: np.ndarray, delta: torch.Tensor) -> np.ndarray:
    """``H x W x C`` classical + a tone-space ``(3, H, W)`` correction; zero leaves it bit-exact."""
    c = torch.from_numpy(np.ascontiguousarray(classical[..., :3], np.float32)).permute(2, 0, 1)
    toned = tone(c)
    change = untone(toned + delta) - untone(toned)
    out = np.array(classical, dtype=np.float32, copy=True)
    out[..., :3] += change.permute(1, 2, 0).numpy()
    return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A torch view of ``a`` (copied only when its strides are negative, which torch cannot view)."""
    a = np.asarray(a)
    return torch.from_numpy(a if all(s >= 0 for s in a.strides) else np.ascontiguousarray(a))


def _pad(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    rh, rw = min(ph, h - 1), min(pw, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if ph - rh or pw - rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x
