"""Cut a window out of a rendered Cycles scene folder (pinhole.exr, cycles_dof.exr, scene.json).

    PYTHONPATH=server .venv/bin/python bench/cycles/crop_scene.py SRC DST --x 100 --y 40 --width 96 --height 64

The window keeps every pixel's CoC in px: ``sensor_width_mm`` is scaled by ``width / source
width`` (a cropped sensor with the same lens), so the benchmark's and the training loader's
``coc_from_depth`` give the crop the same blur as the full frame.  Used for the small test
fixtures in ``tests/stages/refine/data/cycles/`` (light from outside the window that reaches
its border in the truth is the only difference from the full frame).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focuspull.io.images import read_image, write_image


def crop(src: Path, dst: Path, x: int, y: int, width: int, height: int) -> None:
    meta = json.loads((src / "scene.json").read_text())
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("pinhole.exr", "cycles_dof.exr"):
        image = read_image(str(src / name))
        if x < 0 or y < 0 or x + width > image.width or y + height > image.height:
            raise SystemExit(f"window {width}x{height}+{x}+{y} is outside {src / name} ({image.width}x{image.height})")
        write_image(str(dst / name), image.pixels[y:y + height, x:x + width], list(image.channel_names))
    meta.update(sensor_width_mm=meta["sensor_width_mm"] * width / meta["width"], width=width, height=height,
                cropped_from=dict(scene=src.name, x=x, y=y, source_width=meta["width"], source_height=meta["height"]))
    (dst / "scene.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--x", type=int, required=True)
    p.add_argument("--y", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    args = p.parse_args(argv)
    crop(args.src, args.dst, args.x, args.y, args.width, args.height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
