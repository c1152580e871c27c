"""Cycles stills as refiner training data (``focuspull train --cycles-data DIR``).

A folder of scenes written by ``bench/cycles/make_training_scenes.py`` (random scenes, never
the benchmark's): ``<DIR>/<scene>/pinhole.exr`` (R,G,B,A + planar Z in metres),
``cycles_dof.exr`` (R,G,B,A, Cycles' thin-lens truth) and ``scene.json`` (lens).  Each scene
becomes a 1-frame clip: all-in-focus = the pinhole render, CoC from Z through Blender's camera
(``ThinLens(cg_camera=True)``), classical = focuspull's layered render of it (the same call
``bench/quality.py`` makes), truth = Cycles.  Training samples are random crops (flipped,
exposure-jittered; half of them centred where the classical render is most wrong), and
the strength K is the whole frame's, as at inference.  Validation uses fixed crops.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focuspull.errors import InputError
from focuspull.stages.refine.training.scenes import Clip


@dataclass
class CyclesScene:
    """One scene, whole frame: ``aif``/``classical``/``truth`` ``(H, W, 3)``, ``coc_px`` ``(H, W)``."""

    name: str
    aif: np.ndarray
    coc_px: np.ndarray
    classical: np.ndarray
    truth: np.ndarray
    error: np.ndarray  # (H, W) display-referred |classical - truth|, for choosing crops

    @property
    def strength_px(self) -> float:
        return float(np.abs(self.coc_px).max())


def cycles_rotation_deg(meta: dict) -> float:
    """focuspull's aperture ``rotation_deg`` for Cycles' ``aperture_rotation`` (the rule of
    ``bench/quality.py``: Cycles puts a polygon vertex at ``rotation + 180/blades``)."""
    blades = int(meta["blades"])
    return float(meta["rotation_deg"]) + (180.0 / blades if blades else 0.0)


def display(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0) ** (1.0 / 2.2)


def load_scene(folder: Path) -> CyclesScene:
    from focuspull.io.images import read_image  # noqa: PLC0415 - OpenImageIO
    from focuspull.stages.aperture import Aperture  # noqa: PLC0415
    from focuspull.stages.lens import ThinLens, coc_from_depth  # noqa: PLC0415
    from focuspull.stages.render.layered import render_frame  # noqa: PLC0415 - torch

    meta = json.loads((folder / "scene.json").read_text())
    pin = read_image(str(folder / "pinhole.exr"))
    names = list(pin.channel_names)
    rgba = np.ascontiguousarray(pin.pixels[..., [names.index(c) for c in "RGBA"]], np.float32)
    z_m = np.ascontiguousarray(pin.pixels[..., names.index("Z")], np.float32)
    dof = read_image(str(folder / "cycles_dof.exr"))
    truth = np.ascontiguousarray(dof.pixels[..., [list(dof.channel_names).index(c) for c in "RGB"]], np.float32)
    lens = ThinLens(focal_length_mm=meta["focal_length_mm"], fstop=meta["fstop"],
                    sensor_width_mm=meta["sensor_width_mm"], focus_distance_m=meta["focus_distance_m"],
                    cg_camera=True)
    aperture = Aperture(blades=int(meta["blades"]), rotation_deg=cycles_rotation_deg(meta))
    classical = render_frame(rgba, z_m, lens, depth_math="depth", aperture=aperture)[..., :3]
    coc = np.asarray(coc_from_depth(z_m, lens, "depth"), np.float32)
    error = np.abs(display(classical) - display(truth)).mean(axis=-1)
    return CyclesScene(folder.name, rgba[..., :3].copy(), coc, np.ascontiguousarray(classical, np.float32),
                       truth, error)


def scene_folders(root: Path) -> list[Path]:
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if (p / "scene.json").is_file() and not p.name.endswith(".tmp")) \
        if root.is_dir() else []
    if not folders:
        raise InputError(f"no Cycles training scenes in {root}",
                         "render some with bench/cycles/make_training_scenes.py (see docs/refine.md)")
    return folders


def load_scenes(root: Path, limit: int = 0) -> list[CyclesScene]:
    folders = scene_folders(root)
    return [load_scene(f) for f in (folders[:limit] if limit else folders)]


def crop_clip(scene: CyclesScene, y: int, x: int, size: int, *, flip_x: bool = False, flip_y: bool = False,
              gain: float = 1.0) -> Clip:
    """A ``size x size`` 1-frame clip at ``(y, x)``; strength K stays the whole frame's."""
    def cut(a):
        a = a[y:y + size, x:x + size]
        if flip_x:
            a = a[:, ::-1]
        if flip_y:
            a = a[::-1]
        return np.ascontiguousarray(a)[None]

    return Clip(cut(scene.aif) * gain, cut(scene.coc_px), cut(scene.classical) * gain, cut(scene.truth) * gain,
                strength_px=np.array([scene.strength_px], np.float32))


def random_crop(scene: CyclesScene, size: int, rng: np.random.Generator) -> Clip:
    """A training crop: uniform, or (half the time) centred on a pixel drawn by the classical error."""
    h, w = scene.coc_px.shape
    if size > min(h, w):
        raise InputError(f"crop size {size} is larger than the Cycles scene {scene.name} ({w}x{h})",
                         "pass a smaller --size")
    if rng.random() < 0.5:
        p = scene.error.ravel() + 1e-6
        i = int(rng.choice(p.size, p=p / p.sum()))
        cy, cx = divmod(i, w)
        y = int(np.clip(cy - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, h - size))
        x = int(np.clip(cx - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, w - size))
    else:
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return crop_clip(scene, y, x, size, flip_x=bool(rng.random() < 0.5), flip_y=bool(rng.random() < 0.5),
                     gain=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))))


def validation_crops(scenes: list[CyclesScene], size: int) -> list[Clip]:
    """Fixed crops of the validation scenes tiling each whole frame (no flips, no gain)."""
    from focuspull.stages.refine.tiling import piece_starts  # noqa: PLC0415

    clips = []
    for s in scenes:
        h, w = s.coc_px.shape
        for y in piece_starts(h, size, 0):
            for x in piece_starts(w, size, 0):
                clips.append(crop_clip(s, y, x, size))
    return clips
