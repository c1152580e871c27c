"""Random Cycles scenes for training the refiner (never the benchmark scenes).

Run with Blender-as-a-module (``bpy``) in its own venv, never the focuspull venv:

    /work/venv-bpy/bin/python bench/cycles/make_training_scenes.py --out /work/data/cycles-train \
        --first 0 --count 200 --threads 2
    /work/venv-bpy/bin/python bench/cycles/make_training_scenes.py --out /work/data/cycles-val \
        --first 1000000 --count 16 --threads 2

``--hidden-emitters`` adds emitters around the focused object's outline, partly hidden behind
it (the benchmark's largest error; docs/refine.md); those scenes use their own seed ranges
(training from 500000, validation from 1500000).

Scene ``i`` is a pure function of its seed ``i`` (numpy ``default_rng(i)``); training seeds
stay below :data:`VALIDATION_SEED0` and validation seeds start there, so the splits are
disjoint.  Each scene folder ``<out>/<seed:07d>/`` has the layout of ``bench/scenes/<name>/``
(``pinhole.exr`` R,G,B,A,Z planar metres; ``cycles_dof.exr`` R,G,B,A thin-lens truth;
``scene.json`` lens + settings) without the Blender Defocus render.  Existing complete
folders are skipped, so a killed run resumes.

What a scene holds (all random, in the style of ``make_scenes.py``): a textured backdrop
(checker/noise, dim or bright) at 3-30 m; often a grid or scatter of small HDR emitters
(random colours, strength 5-100) at a random depth; 1-4 textured spheres/cubes/rods,
one of them at the focus distance; sometimes thin rods near the camera and a ground plane.
Lens: 50-100 mm, blades 0/5/6/8 at a random rotation; the focus distance is one object's
depth and the f-stop is set so the largest CoC is 5-18 px (the benchmark's are 9-13 px).
384x216 like the benchmark, fewer samples (pinhole 32, DoF 64) + OIDN.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes as ms  # noqa: E402  (bench/cycles/make_scenes.py: the same scene toolkit)

VALIDATION_SEED0 = 1_000_000
HIDDEN_STREAM = 7  # the extra random stream of --hidden-emitters scenes
PINHOLE_SAMPLES = 32
DOF_SAMPLES = 64


def _colour(rng, lo=0.05, hi=0.95):
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


def _textured(rng, name, dim=False):
    lo, hi = (0.005, 0.08) if dim else (0.05, 0.9)
    kind = rng.integers(0, 3)
    return ms.material(name, _colour(rng, lo, hi), _colour(rng, lo, hi),
                       checker_scale=float(rng.uniform(2, 40)) if kind != 1 else 0.0,
                       noise_scale=float(rng.uniform(2, 60)) if kind != 0 else 0.0)


def _half_extent(depth_m, lens):
    """Half width / height (m) of the view at ``depth_m``."""
    w = ms.SENSOR_WIDTH_MM / 2 / lens["focal_length_mm"] * depth_m
    return w, w * ms.HEIGHT / ms.WIDTH


def random_lens(rng) -> dict:
    return dict(focal_length_mm=float(rng.choice([50.0, 70.0, 85.0, 85.0, 100.0])),
                fstop=float(rng.choice([1.4, 1.4, 1.8, 2.0, 2.8, 4.0])),  # replaced by build_random;
                # still drawn so the seeds keep rendering the scenes the shipped model saw
                focus_distance_m=0.0,  # set by the builder (an object's depth)
                blades=int(rng.choice([0, 0, 5, 6, 6, 8])),
                rotation_deg=float(rng.uniform(0, 60)))


def coc_radius_px(depth_m, lens) -> float:
    """|CoC| radius (px) of a point at ``depth_m`` for Blender's camera (image plane at f)."""
    f = lens["focal_length_mm"]
    diameter_mm = f / lens["fstop"] * f * abs(1.0 / lens["focus_distance_m"] - 1.0 / depth_m) / 1000.0
    return 0.5 * diameter_mm / ms.SENSOR_WIDTH_MM * ms.WIDTH


def build_random(rng, lens, hidden_rng=None) -> None:
    """Populate the empty scene; sets ``lens['focus_distance_m']`` and ``lens['fstop']``.

    ``hidden_rng`` (``--hidden-emitters``): also put 3-8 small HDR emitters far behind the
    focused object, around its silhouette, so that many are partly (some wholly) hidden behind
    an in-focus edge; objects are then spheres or cubes (no rods).  Drawn from their own
    random stream, so the lens and most of the scene are those the seed makes without it.
    """
    back_depth = float(rng.uniform(3.0, 30.0))
    dim = rng.random() < 0.5
    bw, bh = _half_extent(back_depth, lens)
    ms.wall(back_depth, 2.6 * bw, 2.6 * bh, _textured(rng, "backdrop", dim=dim))
    depths, objects = [], []
    # Objects: at least one, one of them becomes the focus target.
    for i in range(int(rng.integers(1, 5))):
        d = float(rng.uniform(0.8, min(back_depth * 0.8, 6.0)))
        w, h = _half_extent(d, lens)
        loc = (float(rng.uniform(-0.8, 0.8) * w), d, float(rng.uniform(-0.8, 0.8) * h))
        size = float(rng.uniform(0.08, 0.35)) * h
        mat = _textured(rng, f"obj{i}")
        kind = rng.integers(0, 3)
        if hidden_rng is not None and kind == 2:
            kind = int(hidden_rng.integers(0, 2))  # a rod's silhouette is too thin to hide behind
        objects.append((int(kind), loc, size))
        if kind == 0:
            ms.sphere(loc, size, mat)
        elif kind == 1:
            ms.cube(loc, 1.6 * size, mat, rotation=tuple(float(a) for a in rng.uniform(0, 1.5, 3)))
        else:
            ms.rod(loc, size * 0.3, 4 * size, mat, rotation=(0.0, float(rng.uniform(-1.2, 1.2)), 0.0))
        depths.append(d)
    focus = float(rng.choice(depths)) if rng.random() < 0.6 else min(depths)
    near = focus
    if hidden_rng is not None:
        near = min(near, _hidden_emitters(hidden_rng, lens, objects[depths.index(focus)], back_depth))
    # Thin occluders near the camera.
    if rng.random() < 0.3:
        d = float(rng.uniform(0.5, max(0.6, 0.7 * focus)))
        w, h = _half_extent(d, lens)
        mat = _textured(rng, "rods")
        for j in range(int(rng.integers(1, 4))):
            ms.rod((float(rng.uniform(-0.8, 0.8) * w), d, 0.0), float(rng.uniform(0.002, 0.012)), 3 * h, mat,
                   rotation=(0.0, float(rng.uniform(-0.8, 0.8)), 0.0))
        near = min(near, d)
    # Ground plane.
    if rng.random() < 0.25:
        import bpy  # noqa: PLC0415

        bpy.ops.mesh.primitive_plane_add(size=1.0)
        ground = bpy.context.object
        ground.scale = (3 * bw, back_depth, 1.0)
        bpy.ops.object.transform_apply(scale=True)
        ms.place(ground, (0, back_depth / 2, -float(rng.uniform(0.5, 0.9)) * bh * min(1.0, 3.0 / back_depth) - 0.2))
        ms.assign(ground, _textured(rng, "ground"))
    # HDR emitters: a grid or a scatter, mostly far behind focus (the benchmark's hard case).
    if rng.random() < 0.85:
        lo = min(back_depth * 0.9, focus * 1.5) if rng.random() < 0.85 else 0.6
        d = float(rng.uniform(lo, back_depth * 0.95))
        w, h = _half_extent(d, lens)
        n = int(rng.integers(4, 26))
        if rng.random() < 0.5:
            cols = int(rng.integers(3, 7))
            rows = int(rng.integers(2, 4))
            xs = np.linspace(-0.8, 0.8, cols) * w
            zs = np.linspace(-0.75, 0.75, rows) * h
            pts = [(x, d, z) for z in zs for x in xs]
        else:
            spread = rng.random() < 0.4
            pts = []
            for _ in range(n):
                dd = float(rng.uniform(lo, back_depth * 0.95)) if spread else d
                ww, hh = _half_extent(dd, lens)
                pts.append((float(rng.uniform(-0.9, 0.9) * ww), dd, float(rng.uniform(-0.9, 0.9) * hh)))
        radius_px = float(rng.uniform(1.0, 5.0))
        strength = float(rng.uniform(5.0, 100.0))
        palette = [_colour(rng, 0.2, 1.0) for _ in range(int(rng.integers(1, 6)))]
        for k, (x, y, z) in enumerate(pts):
            r_m = radius_px * y / (lens["focal_length_mm"] / ms.SENSOR_WIDTH_MM * ms.WIDTH)
            c = palette[k % len(palette)]
            ms.sphere((float(x), float(y), float(z)), r_m,
                      ms.material(f"emitter{k}", c, c, emission=strength * float(rng.uniform(0.5, 1.5))))
            near = min(near, y)
    ms.sun(strength=float(rng.uniform(1.0, 4.0)),
           rotation=(math.radians(float(rng.uniform(20, 70))), math.radians(float(rng.uniform(-30, 30))),
                     math.radians(float(rng.uniform(-60, 60)))))
    # The f-stop that gives a largest CoC of 5-18 px (the benchmark scenes have 9-13 px).
    lens["focus_distance_m"] = focus
    lens["fstop"] = 1.0
    widest = max(coc_radius_px(back_depth, lens), coc_radius_px(near, lens), 1e-6)
    lens["fstop"] = round(max(1.2, widest / float(rng.uniform(5.0, 18.0))), 3)


def _hidden_emitters(rng, lens, focused, back_depth) -> float:
    """Emitters behind the focused object ``(kind, loc, size)``, around its silhouette.

    Each one lies on a ray through the object's outline, at 0.75-1.2 silhouette radii from its
    centre (a sphere's radius is ``size``, a cube's half edge 0.8 ``size``): inside 1 it is
    (partly) hidden, and a real lens sees around the in-focus edge to it.  Returns the nearest
    emitter depth.
    """
    kind, (x, d, z), size = focused
    radius = size if kind == 0 else 0.8 * size * float(rng.uniform(1.0, 1.4))
    lo = min(back_depth * 0.9, d * float(rng.uniform(1.5, 4.0)))
    de = float(rng.uniform(lo, back_depth * 0.95))
    radius_px = float(rng.uniform(1.5, 6.0))
    strength = float(rng.uniform(10.0, 100.0))
    px_per_m = lens["focal_length_mm"] / ms.SENSOR_WIDTH_MM * ms.WIDTH
    for k in range(int(rng.integers(3, 9))):
        theta = float(rng.uniform(0, 2 * math.pi))
        u = float(rng.uniform(0.75, 1.2))
        scale = de / d  # the same direction from the camera, farther away
        ex = (x + u * radius * math.cos(theta)) * scale
        ez = (z + u * radius * math.sin(theta)) * scale
        c = _colour(rng, 0.2, 1.0)
        ms.sphere((ex, de, ez), radius_px * de / px_per_m,
                  ms.material(f"hidden{k}", c, c, emission=strength * float(rng.uniform(0.5, 1.5))))
    return de


def render(seed: int, lens: dict, *, dof: bool, samples: int, threads: int, tmpdir: str, hidden: bool = False):
    scene = ms.reset()
    lens = dict(lens)
    # same seed -> same scene (and focus) both times
    build_random(np.random.default_rng(seed), lens, np.random.default_rng((seed, HIDDEN_STREAM)) if hidden else None)
    ms.camera(scene, lens, dof=dof)
    ms.render_settings(scene, samples, threads)
    scene.cycles.seed = seed % 100_000
    scene.render.use_compositing = False
    scene.render.filepath = os.path.join(tmpdir, f"{'dof' if dof else 'pinhole'}.exr")
    import bpy  # noqa: PLC0415

    bpy.ops.render.render(write_still=True)
    return ms.read_layers(scene.render.filepath), lens


def make(seed: int, out_root: str, threads: int, pinhole_samples: int = PINHOLE_SAMPLES,
         dof_samples: int = DOF_SAMPLES, hidden: bool = False) -> dict | None:
    folder = os.path.join(out_root, f"{seed:07d}")
    if os.path.isfile(os.path.join(folder, "scene.json")):
        return None
    rng = np.random.default_rng(seed)
    lens = random_lens(rng)
    start = time.perf_counter()
    scene_seed = seed * 2 + 1  # the scene's own stream, independent of the lens draw
    with tempfile.TemporaryDirectory() as tmp:
        pin, lens_full = render(scene_seed, lens, dof=False, samples=pinhole_samples, threads=threads, tmpdir=tmp,
                                hidden=hidden)
        dof, _ = render(scene_seed, lens, dof=True, samples=dof_samples, threads=threads, tmpdir=tmp, hidden=hidden)
    z = pin["ViewLayer.Depth.Z"]
    tmp_folder = folder + ".tmp"
    os.makedirs(tmp_folder, exist_ok=True)
    ms.write_half_exr(os.path.join(tmp_folder, "pinhole.exr"), ms.rgba(pin, "ViewLayer.Combined") + [z],
                      ["R", "G", "B", "A", "Z"])
    ms.write_half_exr(os.path.join(tmp_folder, "cycles_dof.exr"), ms.rgba(dof, "ViewLayer.Combined"), list("RGBA"))
    meta = dict(width=ms.WIDTH, height=ms.HEIGHT, sensor_width_mm=ms.SENSOR_WIDTH_MM, seed=seed,
                samples=dict(pinhole=pinhole_samples, dof=dof_samples), denoiser="OpenImageDenoise",
                hidden_emitters=hidden,
                generator="bench/cycles/make_training_scenes.py", render_seconds=round(time.perf_counter() - start, 2),
                z_min_m=float(z.min()), z_max_m=float(z.max()), **lens_full)
    with open(os.path.join(tmp_folder, "scene.json"), "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp_folder, folder)  # complete scenes only
    return meta


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--first", type=int, default=0, help="first seed (validation: >= %d)" % VALIDATION_SEED0)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pinhole-samples", type=int, default=PINHOLE_SAMPLES)
    p.add_argument("--dof-samples", type=int, default=DOF_SAMPLES)
    p.add_argument("--hidden-emitters", action="store_true",
                   help="also hide emitters partly behind the focused object's silhouette")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for seed in range(args.first, args.first + args.count):
        meta = make(seed, os.path.abspath(args.out), args.threads, args.pinhole_samples, args.dof_samples,
                    args.hidden_emitters)
        if meta:
            print(f"{seed}: {meta['render_seconds']:.1f} s, f/{meta['fstop']} {meta['focal_length_mm']:.0f} mm, "
                  f"focus {meta['focus_distance_m']:.2f} m, blades {meta['blades']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
