"""Quality benchmark: focuspull vs Blender's Defocus node vs classical scatter, against Cycles.

Every scene in ``bench/scenes/<name>/`` (rendered by ``bench/cycles/make_scenes.py``) holds a
pinhole render with planar Z, the same scene rendered by Cycles with a real thin lens (the
ground truth), and Blender's compositor Defocus node applied to the pinhole render.  This script
blurs the pinhole render with focuspull and with the scatter baseline (same thin-lens CoC) and
scores all of them against Cycles with PSNR / SSIM on display-referred images (bench/metrics.py).
"pinhole" (no blur at all) is listed as the floor every method must beat.

    .venv/bin/python bench/quality.py [--only highlights ...] [--out bench/out] [--json results.json]
                                      [--markdown]

Writes ``<out>/<scene>.png``: input | Cycles | focuspull | Blender Defocus | scatter.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # so `import quality` from a test finds its siblings
    sys.path.insert(0, str(BENCH_DIR))

import metrics  # noqa: E402  (bench/metrics.py)
import scatter  # noqa: E402  (bench/scatter.py)

from focuspull.stages.aperture import Aperture  # noqa: E402
from focuspull.errors import InputError, SequenceError  # noqa: E402
from focuspull.stages.lens import LinearLens, ThinLens, coc_from_depth  # noqa: E402

SCENES_DIR = BENCH_DIR / "scenes"
SCENE_NAMES = ("objects", "highlights", "occluders", "hexagon")
METHODS = ("focuspull", "blender_defocus", "scatter", "pinhole")
REFINED = "focuspull + refine"  # a column only with --refine DIR (docs/refine.md)
DEFAULT_REFINER = BENCH_DIR.parent / "models" / "refiner-small"
LENS_MODELS = ("thin", "cycles")
STRIP = (("input", "pinhole"), ("Cycles DoF", "cycles"), ("focuspull", "focuspull"),
         ("Blender Defocus", "blender_defocus"), ("scatter", "scatter"))


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Channels of a single-part EXR as {name: H x W float32}."""
    if not path.exists():
        raise SequenceError(f"benchmark scene file {path} is missing",
                            "render the scenes with bench/cycles/make_scenes.py (see bench/README.md)")
    buf = oiio.ImageBuf(str(path))
    pixels = buf.get_pixels(oiio.FLOAT)
    if buf.has_error or pixels is None:
        raise SequenceError(f"cannot read {path}: {buf.geterror()}", "re-render the scene")
    return {name: np.ascontiguousarray(pixels[..., i]) for i, name in enumerate(buf.spec().channelnames)}


def _stack(channels: dict[str, np.ndarray], names: str) -> np.ndarray:
    return np.stack([channels[c] for c in names], axis=-1).astype(np.float32)


def load_scene(name: str, scenes_dir: Path = SCENES_DIR) -> dict:
    """Pinhole RGBA (H x W x 4), Z (H x W, planar metres), Cycles and Defocus RGBA, scene.json."""
    folder = Path(scenes_dir) / name
    meta_path = folder / "scene.json"
    if not meta_path.exists():
        raise SequenceError(f"no scene.json in {folder}",
                            f"pick one of {', '.join(SCENE_NAMES)} or render it with bench/cycles/make_scenes.py")
    pinhole = read_exr(folder / "pinhole.exr")
    return dict(meta=json.loads(meta_path.read_text()),
                rgba=_stack(pinhole, "RGBA"), z_m=pinhole["Z"],
                cycles=_stack(read_exr(folder / "cycles_dof.exr"), "RGBA"),
                blender_defocus=_stack(read_exr(folder / "blender_defocus.exr"), "RGBA"))


def scene_lens(meta: dict, lens_model: str = "cycles") -> tuple[ThinLens | LinearLens, Aperture]:
    """The lens of a scene.json and its aperture.

    ``cycles`` (default: the camera that rendered the ground truth): ``ThinLens(cg_camera=True)``,
    whose image plane sits at the focal length whatever the focus distance, so its CoC lacks a
    real lens' ``S_f / (S_f - f)`` factor (measured on the highlights scene; bench/README.md).
    ``thin``: a photographic thin lens, for comparison.
    """
    if lens_model not in LENS_MODELS:
        raise InputError(f"lens model must be one of {LENS_MODELS}, got {lens_model!r}",
                         "pass --lens-model thin or --lens-model cycles")
    lens = ThinLens(focal_length_mm=meta["focal_length_mm"], fstop=meta["fstop"],
                    sensor_width_mm=meta["sensor_width_mm"], focus_distance_m=meta["focus_distance_m"],
                    cg_camera=lens_model == "cycles")
    return lens, Aperture(blades=int(meta["blades"]), rotation_deg=focuspull_rotation_deg(meta))


def focuspull_rotation_deg(meta: dict) -> float:
    """focuspull's ``rotation_deg`` for the polygon orientation Cycles rendered.

    scene.json holds Cycles' ``aperture_rotation``.  Measured on the committed hexagon scene and
    a 5-blade test render: Cycles puts a vertex at ``rotation + 180/blades`` degrees
    (counter-clockwise on screen) for points behind focus; focuspull puts one at ``rotation_deg``.
    """
    blades = int(meta["blades"])
    rotation = float(meta["rotation_deg"])
    return rotation + 180.0 / blades if blades else rotation


def render_focuspull(rgba: np.ndarray, z_m: np.ndarray, lens: ThinLens | LinearLens,
                     aperture: Aperture) -> np.ndarray:
    from focuspull.stages.render.layered import render_frame  # torch: loaded only when a render is asked for

    return render_frame(rgba, z_m, lens, depth_math="depth", aperture=aperture)


def render_refined(rgba: np.ndarray, coc: np.ndarray, classical: np.ndarray, refine_dir: Path) -> np.ndarray:
    """The learned refiner on one frame (a 1-frame clip) after the classical render."""
    from focuspull.stages.refine import load_refiner  # torch + diffusers: only with --refine

    return load_refiner(refine_dir)(rgba[None], coc[None], classical[None]).frames[0]


def evaluate_scene(name: str, scenes_dir: Path = SCENES_DIR, out_dir: Path | None = None,
                   lens_model: str = "cycles", refine_dir: Path | None = None) -> dict:
    """Render one scene with every method and score it against the Cycles ground truth.

    Returns ``{"scene", "width", "height", "max_coc_px", "methods": {method: {"psnr_db",
    "ssim", "seconds"}}}`` for the methods in :data:`METHODS` (``seconds`` is one run, for
    orientation only: bench/speed.py measures speed).  Writes ``<out_dir>/<name>.png`` if given.
    ``lens_model`` picks the CoC given to focuspull and scatter (:func:`scene_lens`).
    """
    scene = load_scene(name, scenes_dir)
    lens, aperture = scene_lens(scene["meta"], lens_model)
    coc = coc_from_depth(scene["z_m"], lens, "depth")
    renders: dict[str, np.ndarray] = {"pinhole": scene["rgba"], "blender_defocus": scene["blender_defocus"],
                                      "cycles": scene["cycles"]}
    seconds: dict[str, float | None] = {"pinhole": None, "blender_defocus": None}
    import focuspull.stages.render.layered  # noqa: F401  (import torch before the clock starts)

    start = time.perf_counter()
    renders["focuspull"] = render_focuspull(scene["rgba"], scene["z_m"], lens, aperture)
    seconds["focuspull"] = time.perf_counter() - start
    start = time.perf_counter()
    renders["scatter"] = scatter.scatter_render(scene["rgba"], coc)
    seconds["scatter"] = time.perf_counter() - start

    methods = METHODS
    if refine_dir is not None:
        render_refined(scene["rgba"][:16, :16], coc[:16, :16], renders["focuspull"][:16, :16], refine_dir)  # load
        start = time.perf_counter()
        renders[REFINED] = render_refined(scene["rgba"], coc, renders["focuspull"], refine_dir)
        seconds[REFINED] = time.perf_counter() - start
        methods = (METHODS[0], REFINED) + METHODS[1:]

    truth = scene["cycles"][..., :3]
    result = {"scene": name, "lens_model": lens_model, "width": int(scene["rgba"].shape[1]),
              "height": int(scene["rgba"].shape[0]), "max_coc_px": round(float(np.abs(coc).max()), 2),
              "methods": {}}
    for method in methods:
        rgb = renders[method][..., :3]
        result["methods"][method] = {"psnr_db": round(metrics.psnr(rgb, truth), 3),
                                     "ssim": round(metrics.ssim(rgb, truth), 4),
                                     "seconds": None if seconds[method] is None else round(seconds[method], 3)}
    if out_dir is not None:
        write_strip(Path(out_dir) / f"{name}.png", [(label, renders[key]) for label, key in STRIP])
        if refine_dir is not None:
            error = lambda key: np.abs(metrics.display_referred(renders[key][..., :3])  # noqa: E731
                                       - metrics.display_referred(truth))[..., :3] ** 2.2 * 4.0
            write_strip(Path(out_dir) / f"{name}_refine.png",
                        [("input", renders["pinhole"]), ("Cycles DoF", renders["cycles"]),
                         ("focuspull", renders["focuspull"]), ("+ refine", renders[REFINED]),
                         ("error x4 focuspull", error("focuspull")), ("error x4 refined", error(REFINED))])
    return result


def write_strip(path: Path, panels: list[tuple[str, np.ndarray]]) -> None:
    """Side-by-side display-referred PNG of scene-linear panels, each labelled if a font is found."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tiles = []
    for label, image in panels:
        rgb = np.ascontiguousarray(metrics.display_referred(image[..., :3]), dtype=np.float32)
        tile = oiio.ImageBuf(oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, oiio.FLOAT))
        tile.set_pixels(oiio.ROI(), rgb)
        # Labels are a convenience: without a usable font the strip is still written.
        oiio.ImageBufAlgo.render_text(tile, 6, 18, label, 14, "", (1.0, 1.0, 0.2))
        tiles.append(tile.get_pixels(oiio.FLOAT))
    gap = np.ones((tiles[0].shape[0], 2, 3), np.float32)
    strip = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    out = oiio.ImageBuf(oiio.ImageSpec(strip.shape[1], strip.shape[0], 3, oiio.UINT8))
    out.set_pixels(oiio.ROI(), np.clip(strip * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if not out.write(str(path)):
        raise SequenceError(f"cannot write {path}: {out.geterror()}", "pass a writable --out folder")


def markdown_table(results: list[dict]) -> str:
    """PSNR (dB) / SSIM vs Cycles, one row per scene, one column per method (BENCHMARKS.md)."""
    methods = list(results[0]["methods"]) if results else list(METHODS)
    header = "| scene | max CoC px | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + " |"
    rule = "|---|---:|" + "---:|" * len(methods)
    rows = [header, rule]
    for r in results:
        cells = []
        for m in methods:
            s = r["methods"][m]
            psnr = "inf" if math.isinf(s["psnr_db"]) else f"{s['psnr_db']:.2f}"
            cells.append(f"{psnr} / {s['ssim']:.4f}")
        rows.append(f"| {r['scene']} | {r['max_coc_px']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="focuspull quality vs Cycles ground truth")
    parser.add_argument("--only", nargs="*", choices=SCENE_NAMES, default=None, help="scenes to run")
    parser.add_argument("--scenes", type=Path, default=SCENES_DIR, help="folder of rendered scenes")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="folder for the PNG strips")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    parser.add_argument("--lens-model", choices=LENS_MODELS, default="cycles",
                        help="CoC for focuspull and scatter: focuspull's thin lens, or Blender's camera model")
    parser.add_argument("--refine", type=Path, nargs="?", const=DEFAULT_REFINER, default=None, metavar="DIR",
                        help=f"add a '{REFINED}' column with the refiner in DIR (default {DEFAULT_REFINER})")
    args = parser.parse_args(argv)
    results = []
    for name in args.only or SCENE_NAMES:
        results.append(evaluate_scene(name, args.scenes, args.out, args.lens_model, args.refine))
        if not args.markdown:
            m = results[-1]["methods"]
            print(f"{name}: " + ", ".join(f"{k} {v['psnr_db']:.2f} dB / {v['ssim']:.4f}" for k, v in m.items()),
                  flush=True)
    print(markdown_table(results))
    if args.refine is not None:
        gains = [r["methods"][REFINED]["psnr_db"] - r["methods"]["focuspull"]["psnr_db"] for r in results]
        per_scene = ", ".join("%s %+.3f" % (r["scene"], g) for r, g in zip(results, gains))
        print(f"refine vs classical: mean {np.mean(gains):+.3f} dB, worst {min(gains):+.3f} dB ({per_scene})")
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    if not args.markdown:
        print(f"strips in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
