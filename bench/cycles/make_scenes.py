"""Render the Cycles ground-truth scenes of the quality benchmark.

Run with Blender-as-a-module (``bpy``), never with the focuspull venv (bpy pins its own numpy):

    .venv-bpy/bin/python bench/cycles/make_scenes.py [--out bench/scenes] [--only NAME ...]
                                                     [--samples N] [--threads N]

For each scene it writes, into ``<out>/<name>/``, half-float ZIP-compressed EXRs:

* ``pinhole.exr``   -- R,G,B,A + Z: DoF off; Z is the Cycles depth pass, i.e. *planar* camera
  depth in metres (checked by ``--check-planar``: a fronto-parallel wall has constant Z).
* ``cycles_dof.exr`` -- R,G,B,A: the same scene, seed and sample count with the camera's
  thin-lens depth of field on (focal length, f-stop, focus distance, blades, rotation).
* ``blender_defocus.exr`` -- R,G,B,A: Blender's compositor Defocus node applied to the pinhole
  render and its Z, with the node's f-stop / blades / angle set to the camera's.
* ``scene.json`` -- the lens and render settings the benchmark needs to reproduce the blur.

Everything is procedural (no downloaded assets).  The camera sits at the origin looking along
+Y with +Z up, so the depth of a point is simply its Y coordinate.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import bpy
import numpy as np
import OpenImageIO as oiio

WIDTH, HEIGHT = 384, 216
SENSOR_WIDTH_MM = 36.0
DEFAULT_SAMPLES = 256
SEED = 7

# Per-scene lens.  85 mm on a 36 mm sensor keeps blur radii in a useful 3..15 px range at
# 384 px wide without huge scenes; k_px = (f/2N) f S_f/(S_f-f) / sensor * width.
SCENES = {
    "objects": dict(focal_length_mm=85.0, fstop=1.8, focus_distance_m=2.5, blades=0, rotation_deg=0.0),
    "highlights": dict(focal_length_mm=85.0, fstop=1.4, focus_distance_m=2.0, blades=0, rotation_deg=0.0),
    "occluders": dict(focal_length_mm=85.0, fstop=2.8, focus_distance_m=3.0, blades=0, rotation_deg=0.0),
    "hexagon": dict(focal_length_mm=85.0, fstop=1.4, focus_distance_m=2.0, blades=6, rotation_deg=15.0),
}


# --------------------------------------------------------------------------- scene building


def reset() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.render.resolution_x = WIDTH
    scene.render.resolution_y = HEIGHT
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.05, 0.06, 1.0)
    scene.world = world
    return scene


def material(name, color_a, color_b, *, checker_scale=0.0, noise_scale=0.0, emission=0.0):
    """Diffuse (or pure emission) material with a checker and/or noise texture in object space.

    Object coordinates are in metres for primitives created at their final size, so
    ``checker_scale`` is (about) squares per metre.
    """
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    if emission > 0:
        em = nt.nodes.new("ShaderNodeEmission")
        em.inputs["Color"].default_value = (*color_a, 1.0)
        em.inputs["Strength"].default_value = emission
        nt.links.new(em.outputs[0], out.inputs["Surface"])
        return mat
    coords = nt.nodes.new("ShaderNodeTexCoord").outputs["Object"]
    bsdf = nt.nodes.new("ShaderNodeBsdfDiffuse")
    color = None
    if checker_scale > 0:
        checker = nt.nodes.new("ShaderNodeTexChecker")
        checker.inputs["Scale"].default_value = checker_scale
        checker.inputs["Color1"].default_value = (*color_a, 1.0)
        checker.inputs["Color2"].default_value = (*color_b, 1.0)
        nt.links.new(coords, checker.inputs["Vector"])
        color = checker.outputs["Color"]
    if noise_scale > 0:
        noise = nt.nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = noise_scale
        noise.inputs["Detail"].default_value = 6.0
        nt.links.new(coords, noise.inputs["Vector"])
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "MULTIPLY"
        mix.inputs["Factor"].default_value = 0.8
        if color is None:
            mix.inputs["A"].default_value = (*color_a, 1.0)
        else:
            nt.links.new(color, mix.inputs["A"])
        nt.links.new(noise.outputs["Color"], mix.inputs["B"])
        color = mix.outputs["Result"]
    if color is None:
        bsdf.inputs["Color"].default_value = (*color_a, 1.0)
    else:
        nt.links.new(color, bsdf.inputs["Color"])
    nt.links.new(bsdf.outputs[0], out.inputs["Surface"])
    return mat


def assign(obj, mat):
    obj.data.materials.append(mat)
    return obj


def place(obj, loc, rotation=(0, 0, 0)):
    # Set after creation: the operators' location/rotation arguments are ignored without a
    # 3D view context (background mode), which silently put every object at the origin.
    obj.location = loc
    obj.rotation_euler = rotation
    return obj


def wall(y_m, width_m, height_m, mat, z_m=0.0, x_m=0.0):
    """A fronto-parallel plane at depth ``y_m`` (normal towards the camera)."""
    bpy.ops.mesh.primitive_plane_add(size=1.0)
    obj = bpy.context.object
    obj.scale = (width_m, height_m, 1.0)
    bpy.ops.object.transform_apply(scale=True)  # object space in metres for the textures
    return place(assign(obj, mat), (x_m, y_m, z_m), (math.pi / 2, 0, 0))


def sphere(loc, radius_m, mat):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius_m, segments=48, ring_count=24)
    bpy.ops.object.shade_smooth()
    return place(assign(bpy.context.object, mat), loc)


def cube(loc, size_m, mat, rotation=(0, 0, 0)):
    bpy.ops.mesh.primitive_cube_add(size=size_m)
    return place(assign(bpy.context.object, mat), loc, rotation)


def rod(loc, radius_m, length_m, mat, rotation=(0, 0, 0)):
    bpy.ops.mesh.primitive_cylinder_add(radius=radius_m, depth=length_m, vertices=24)
    bpy.ops.object.shade_smooth()
    return place(assign(bpy.context.object, mat), loc, rotation)


def sun(strength=3.0, rotation=(math.radians(50), math.radians(-20), math.radians(-30))):
    light = bpy.data.lights.new("sun", "SUN")
    light.energy = strength
    light.angle = math.radians(3)
    obj = bpy.data.objects.new("sun", light)
    obj.rotation_euler = rotation
    bpy.context.scene.collection.objects.link(obj)


def build_objects():
    """Textured objects at several depths in front of a textured ground and backdrop."""
    wall(8.0, 5.0, 3.0, material("backdrop", (0.7, 0.6, 0.4), (0.15, 0.2, 0.3), checker_scale=4, noise_scale=6))
    bpy.ops.mesh.primitive_plane_add(size=1.0)
    ground = bpy.context.object
    ground.scale = (5.0, 6.0, 1.0)
    bpy.ops.object.transform_apply(scale=True)
    place(ground, (0, 5.0, -0.3))
    assign(ground, material("ground", (0.35, 0.45, 0.2), (0.1, 0.1, 0.1), checker_scale=5, noise_scale=12))
    cube((-0.2, 1.3, 0.02), 0.12, material("near_cube", (0.9, 0.2, 0.1), (0.95, 0.9, 0.8), checker_scale=40),
         rotation=(0.3, 0.2, 0.5))
    sphere((0.12, 2.5, -0.02), 0.16, material("focus_ball", (0.9, 0.9, 0.9), (0.05, 0.1, 0.6), checker_scale=30))
    rod((0.55, 4.5, -0.05), 0.1, 0.5, material("mid_pillar", (0.8, 0.7, 0.1), (0.2, 0.1, 0.05), checker_scale=20))
    cube((-0.9, 6.0, 0.2), 0.5, material("far_cube", (0.2, 0.6, 0.8), (0.9, 0.9, 0.9), checker_scale=8),
         rotation=(0.0, 0.0, 0.6))
    sun()


EMITTER_DEPTH_M = 10.0
EMITTERS_XZ_M = [(x, z) for z in (-0.6, 0.0, 0.6) for x in (-1.6, -0.8, 0.0, 0.8, 1.6)]


def project_px(x_m, y_m, z_m, focal_length_mm):
    """Pixel coordinates (x right, y down; pixel centres at integers) of a point in camera space."""
    px_per_unit = focal_length_mm / SENSOR_WIDTH_MM * WIDTH
    return (WIDTH / 2 + x_m / y_m * px_per_unit - 0.5, HEIGHT / 2 - z_m / y_m * px_per_unit - 0.5)


def scene_extras(name, lens):
    """Facts about the geometry a test needs: where the point emitters land and how deep."""
    if BUILDERS[name] is not build_highlights:
        return {}
    centres = [project_px(x, EMITTER_DEPTH_M, z, lens["focal_length_mm"]) for x, z in EMITTERS_XZ_M]
    return dict(emitter_depth_m=EMITTER_DEPTH_M,
                emitter_centres_px=[[round(cx, 2), round(cy, 2)] for cx, cy in centres])


def build_highlights():
    """Small, very bright emitters far behind focus in front of a dim backdrop, plus an
    in-focus textured object: the classic bokeh-ball test."""
    wall(12.0, 8.0, 5.0, material("dim_backdrop", (0.04, 0.04, 0.05), (0.01, 0.012, 0.02), checker_scale=3,
                                  noise_scale=3))
    colors = [(1.0, 0.55, 0.2), (0.3, 0.6, 1.0), (1.0, 1.0, 0.9), (1.0, 0.3, 0.4), (0.5, 1.0, 0.5)]
    for i, (x, z) in enumerate(EMITTERS_XZ_M):
        c = colors[i % len(colors)]
        # Radius 4.5 cm ~ 4 px at 10 m: small against the ~11 px bokeh, big enough that
        # enough lens samples hit it for a low-noise ground truth.
        sphere((x, EMITTER_DEPTH_M, z), 0.045, material(f"emitter_{i}", c, c, emission=60.0))
    sphere((0.18, 2.0, -0.04), 0.09, material("focus_ball", (0.9, 0.85, 0.8), (0.5, 0.05, 0.05), checker_scale=40))
    cube((-0.2, 2.0, 0.05), 0.1, material("focus_cube", (0.1, 0.5, 0.2), (0.9, 0.9, 0.9), checker_scale=50),
         rotation=(0.2, 0.0, 0.4))
    sun(strength=2.0)


def build_occluders():
    """Thin rods close to the camera over a sharp textured background (foreground blur)."""
    wall(3.0, 3.0, 2.0, material("focus_wall", (0.8, 0.75, 0.6), (0.1, 0.15, 0.3), checker_scale=12,
                                 noise_scale=20))
    dark = material("bark", (0.25, 0.12, 0.05), (0.25, 0.12, 0.05), noise_scale=80)
    pale = material("pale_rod", (0.9, 0.9, 0.85), (0.9, 0.9, 0.85), noise_scale=60)
    for x in (-0.12, 0.015, 0.11):
        rod((x, 0.8, 0.0), 0.004, 0.6, dark)
    rod((0.0, 1.0, 0.0), 0.004, 0.8, pale, rotation=(0.0, math.radians(55), 0.0))  # a diagonal branch
    rod((-0.05, 1.6, 0.0), 0.01, 1.0, dark)
    sun(strength=3.0, rotation=(math.radians(40), math.radians(-10), math.radians(-20)))


BUILDERS = {"objects": build_objects, "highlights": build_highlights,
            "occluders": build_occluders, "hexagon": build_highlights}


# --------------------------------------------------------------------------- camera & render


def camera(scene, lens, *, dof: bool):
    cam_data = bpy.data.cameras.new("cam")
    cam_data.lens = lens["focal_length_mm"]
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = SENSOR_WIDTH_MM
    cam_data.clip_start = 0.05
    cam_data.clip_end = 1000.0
    cam_data.dof.use_dof = dof
    cam_data.dof.focus_distance = lens["focus_distance_m"]
    cam_data.dof.aperture_fstop = lens["fstop"]
    cam_data.dof.aperture_blades = lens["blades"]
    cam_data.dof.aperture_rotation = math.radians(lens["rotation_deg"])
    cam_data.dof.aperture_ratio = 1.0
    cam = bpy.data.objects.new("cam", cam_data)
    cam.location = (0.0, 0.0, 0.0)
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)  # look along +Y, +Z up
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def defocus_angle_deg(blades, cycles_rotation_deg):
    """The Defocus node angle that gives the bokeh polygon the orientation Cycles renders.

    Measured (5 and 6 blades, points behind focus): Cycles puts a polygon *vertex* at
    ``rotation + 180/blades`` degrees counter-clockwise from +x on screen, the Defocus node at
    ``angle``.  Typing the same number into both would compare conventions, not renderers.
    The node accepts 0..90 degrees; the polygon repeats every 360/blades degrees.
    """
    if not blades:
        return 0.0
    return (cycles_rotation_deg + 180.0 / blades) % (360.0 / blades)


def defocus_compositor(scene, lens):
    """Render Layers -> Defocus (matched to the camera) -> group output (Blender 5 node groups)."""
    tree = bpy.data.node_groups.new("defocus", "CompositorNodeTree")
    scene.compositing_node_group = tree
    scene.render.use_compositing = True
    layers = tree.nodes.new("CompositorNodeRLayers")
    defocus = tree.nodes.new("CompositorNodeDefocus")
    defocus.scene = scene
    defocus.use_zbuffer = True  # Z is real depth: the node computes the CoC from the camera
    defocus.f_stop = lens["fstop"]
    defocus.blur_max = 200.0  # px; far above any CoC in these scenes so it never clips
    defocus.bokeh = {0: "CIRCLE", 3: "TRIANGLE", 4: "SQUARE", 5: "PENTAGON", 6: "HEXAGON",
                     7: "HEPTAGON", 8: "OCTAGON"}[lens["blades"]]
    defocus.angle = math.radians(defocus_angle_deg(lens["blades"], lens["rotation_deg"]))
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    out = tree.nodes.new("NodeGroupOutput")
    tree.links.new(layers.outputs["Image"], defocus.inputs["Image"])
    tree.links.new(layers.outputs["Depth"], defocus.inputs["Z"])
    tree.links.new(defocus.outputs["Image"], out.inputs[0])


def render_settings(scene, samples, threads):
    c = scene.cycles
    c.samples = samples
    c.seed = SEED
    c.use_adaptive_sampling = False  # same sample count everywhere: reproducible noise level
    c.use_denoising = True  # with albedo/normal guides OIDN keeps textures sharp
    c.denoiser = "OPENIMAGEDENOISE"  # the default; explicit so a changed default cannot slip in
    c.max_bounces = 2
    c.diffuse_bounces = 2
    c.glossy_bounces = 0
    c.transmission_bounces = 0
    c.volume_bounces = 0
    c.transparent_max_bounces = 0
    c.caustics_reflective = False
    c.caustics_refractive = False
    c.sample_clamp_indirect = 10.0  # direct light (the emitters) is never clamped
    scene.render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        scene.render.threads = threads
    scene.view_layers[0].use_pass_z = True
    s = scene.render.image_settings
    s.media_type = "MULTI_LAYER_IMAGE"
    s.color_depth = "32"
    s.exr_codec = "ZIP"


def read_layers(path):
    """All channels of a (multi-part) EXR as {channel name: H x W float32}."""
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise RuntimeError(f"cannot read {path}: {oiio.geterror()}")
    channels = {}
    sub = 0
    while inp.seek_subimage(sub, 0):
        spec = inp.spec()
        pixels = inp.read_image(sub, 0, 0, spec.nchannels, oiio.FLOAT)
        for i, name in enumerate(spec.channelnames):
            channels[name] = np.array(pixels[:, :, i], dtype=np.float32)
        sub += 1
    inp.close()
    return channels


def write_half_exr(path, planes, names):
    """Write H x W planes as one half-float ZIP EXR with the given channel names."""
    data = np.stack(planes, axis=-1).astype(np.float16)
    spec = oiio.ImageSpec(data.shape[1], data.shape[0], data.shape[2], oiio.HALF)
    spec.channelnames = tuple(names)
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(path)
    if out is None or not out.open(path, spec):
        raise RuntimeError(f"cannot write {path}: {oiio.geterror()}")
    out.write_image(data)
    out.close()


def render_once(name, lens, *, dof, samples, threads, tmpdir):
    scene = reset()
    BUILDERS[name]()
    camera(scene, lens, dof=dof)
    render_settings(scene, samples, threads)
    if not dof:
        defocus_compositor(scene, lens)
    else:
        scene.render.use_compositing = False
    scene.render.filepath = os.path.join(tmpdir, f"{name}_{'dof' if dof else 'pinhole'}.exr")
    start = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds = time.perf_counter() - start
    return read_layers(scene.render.filepath), seconds


def rgba(layers, prefix):
    return [layers[f"{prefix}.{c}"] for c in "RGBA"]


def make_scene(name, out_root, samples, threads):
    lens = SCENES[name]
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pin, pin_s = render_once(name, lens, dof=False, samples=samples, threads=threads, tmpdir=tmp)
        dof, dof_s = render_once(name, lens, dof=True, samples=samples, threads=threads, tmpdir=tmp)
    z = pin["ViewLayer.Depth.Z"]
    write_half_exr(os.path.join(out_dir, "pinhole.exr"), rgba(pin, "ViewLayer.Combined") + [z],
                   ["R", "G", "B", "A", "Z"])
    write_half_exr(os.path.join(out_dir, "blender_defocus.exr"), rgba(pin, "Composite.Combined"), list("RGBA"))
    write_half_exr(os.path.join(out_dir, "cycles_dof.exr"), rgba(dof, "ViewLayer.Combined"), list("RGBA"))
    meta = dict(width=WIDTH, height=HEIGHT, sensor_width_mm=SENSOR_WIDTH_MM, samples=samples, seed=SEED,
                denoiser="OpenImageDenoise", blender_version=bpy.app.version_string,
                render_seconds=dict(pinhole_and_defocus=round(pin_s, 2), cycles_dof=round(dof_s, 2)),
                z_min_m=float(z.min()), z_max_m=float(z.max()), **lens, **scene_extras(name, lens))
    with open(os.path.join(out_dir, "scene.json"), "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print(f"{name}: pinhole+defocus {pin_s:.1f} s, dof {dof_s:.1f} s, Z {z.min():.3f}..{z.max():.3f} m",
          flush=True)
    return meta


def check_planar(samples, threads):
    """Render a lone fronto-parallel wall off-axis: planar depth is constant over it,
    ray distance would grow towards the image corners."""
    lens = dict(focal_length_mm=35.0, fstop=2.8, focus_distance_m=4.0, blades=0, rotation_deg=0.0)
    scene = reset()
    wall(4.0, 20.0, 20.0, material("flat", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    camera(scene, lens, dof=False)
    render_settings(scene, samples, threads)
    scene.render.use_compositing = False
    with tempfile.TemporaryDirectory() as tmp:
        scene.render.filepath = os.path.join(tmp, "planar.exr")
        bpy.ops.render.render(write_still=True)
        z = read_layers(scene.render.filepath)["ViewLayer.Depth.Z"]
    # Ray distance to the corner of a 35 mm / 36 mm-wide view would be ~4 m * 1.2.
    print(f"planar check: Z over a wall at 4 m: min {z.min():.5f} max {z.max():.5f} "
          f"(corner {z[0, 0]:.5f}, centre {z[z.shape[0] // 2, z.shape[1] // 2]:.5f})")
    return z


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "scenes"))
    parser.add_argument("--only", nargs="*", choices=sorted(SCENES), default=None)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--threads", type=int, default=0, help="render threads (0 = all cores)")
    parser.add_argument("--check-planar", action="store_true", help="only verify that Z is planar depth")
    parser.add_argument("--meta-only", action="store_true",
                        help="refresh the geometry facts in existing scene.json files without rendering")
    args = parser.parse_args(argv)
    if args.check_planar:
        check_planar(4, args.threads)
        return
    if args.meta_only:
        for name in args.only or list(SCENES):
            path = os.path.join(os.path.abspath(args.out), name, "scene.json")
            with open(path) as fh:
                meta = json.load(fh)
            meta.update(SCENES[name], **scene_extras(name, SCENES[name]))
            with open(path, "w") as fh:
                json.dump(meta, fh, indent=2, sort_keys=True)
                fh.write("\n")
        return
    total = 0.0
    for name in args.only or list(SCENES):
        meta = make_scene(name, os.path.abspath(args.out), args.samples, args.threads)
        total += sum(meta["render_seconds"].values())
    print(f"total render time {total:.1f} s")


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    main(argv)
