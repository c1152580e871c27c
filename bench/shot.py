"""Seconds per frame of the whole `focuspull render` command at 1080p.

    .venv/bin/python bench/shot.py [--frames 8] [--repeats 3] [--against /work/main ...]

Writes a short 1920x1080 clip of the demo shot (RGB + Z, half-float EXR) to a temporary
folder, then times `focuspull render` on it end to end in a subprocess (start-up, EXR
read, depth -> CoC, render, atomic EXR write), `--repeats` times with `--overwrite`, after one
untimed run that lets Python cache the compiled modules, as on any machine that ran it before.
`--against DIR...` also times other checkouts' `focuspull render` (their `server/` on
PYTHONPATH), round by round in turn, so every checkout meets the same load; each round
ends with the bare render, so the overhead column compares like with like.
Beside it, the bare renderer (`render_coc` on the same frames, in this process, with the
command's OpenMP wait policy) so the command's own cost -- its overhead -- is visible.
Prints a Markdown table for BENCHMARKS.md and the load average before and after.
"""
from __future__ import annotations

import os

# As the `focuspull` command does (commands/cli.py): idle OpenMP threads sleep.  Set before
# torch loads, so the in-process render_coc column is timed like the command's render.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from focuspull.commands.demo_scene import DemoScene  # noqa: E402
from focuspull.io import write_image  # noqa: E402
from focuspull.stages.lens import ThinLens, coc_from_depth  # noqa: E402
from focuspull.stages.render.layered import render_coc  # noqa: E402

try:  # and, as `focuspull render` does, keep freed frame-sized blocks (this checkout's commands/cli.py)
    from focuspull.commands.cli import reuse_freed_memory  # noqa: E402
except ImportError:  # an older checkout
    def reuse_freed_memory() -> bool:
        return False

LENS = dict(focal_length_mm=50.0, fstop=1.4, sensor_width_mm=36.0, focus_distance_m=4.5)
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", nargs="*", default=[], metavar="DIR",
                        help="other checkouts whose `focuspull render` is timed in the same rounds")
    args = parser.parse_args()

    checkouts = [("this checkout", HERE)] + [(os.path.abspath(d), os.path.abspath(d)) for d in args.against]
    load_before = _load()
    shot = DemoScene(1920, 1080, args.frames)
    tmp = tempfile.mkdtemp(prefix="focuspull_bench_")
    try:
        frames = [shot.frame(i) for i in range(args.frames)]
        for i, fr in enumerate(frames):
            write_image(os.path.join(tmp, f"in.{1001 + i:04d}.exr"), np.dstack([fr.rgb, fr.depth_m]),
                        channel_names=["R", "G", "B", "Z"])
        cmd = [sys.executable, "-m", "focuspull", "render", os.path.join(tmp, "in.####.exr"),
               os.path.join(tmp, "out.####.exr"), "--focal-length", str(LENS["focal_length_mm"]),
               "--fstop", str(LENS["fstop"]), "--sensor-width", str(LENS["sensor_width_mm"]),
               "--focus-distance", str(LENS["focus_distance_m"]), "--max-size", "32",
               "--overwrite", "--quiet"]
        reuse_freed_memory()
        lens = ThinLens(**LENS)
        cocs = [coc_from_depth(fr.depth_m, lens, max_radius_px=32.0) for fr in frames]
        render_coc(frames[0].rgb[:256, :256], cocs[0][:256, :256])  # warm-up
        # Each checkout's commands run as on a user's machine: Python caches compiled modules
        # (this sandbox sets PYTHONDONTWRITEBYTECODE, which made every run compile the
        # package again, ~0.25 s), and one untimed run first writes that cache.
        envs = {name: {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                       "PYTHONPATH": os.path.join(root, "server")} for name, root in checkouts}
        for name, _ in checkouts:
            subprocess.run(cmd, check=True, env=envs[name], stdout=subprocess.DEVNULL)
        cli: dict[str, list[float]] = {name: [] for name, _ in checkouts}
        cli_cpu: dict[str, list[float]] = {name: [] for name, _ in checkouts}
        bare, bare_cpu = [], []
        for _ in range(args.repeats):  # each round: every checkout's command, then the bare render
            for name, _ in checkouts:
                cpu, start = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
                subprocess.run(cmd, check=True, env=envs[name], stdout=subprocess.DEVNULL)
                cli[name].append((time.perf_counter() - start) / args.frames)
                cli_cpu[name].append((_cpu(resource.RUSAGE_CHILDREN) - cpu) / args.frames)
            cpu, start = _cpu(resource.RUSAGE_SELF), time.perf_counter()
            for fr, coc in zip(frames, cocs):
                render_coc(fr.rgb, coc)
            bare.append((time.perf_counter() - start) / args.frames)
            bare_cpu.append((_cpu(resource.RUSAGE_SELF) - cpu) / args.frames)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med_bare, cpu_bare = statistics.median(bare), statistics.median(bare_cpu)
    print(f"{args.frames} frames 1920x1080, 50 mm f/1.4 focus 4.5 m, max size 32 px, {os.cpu_count()} cores, "
          f"load average {load_before} before, {_load()} after\n")
    print("CPU = user + system seconds per frame (both cores counted), less sensitive to other load than wall time.\n")
    print("| what | runs | median s/frame | runs s/frame | overhead over render_coc | CPU s/frame | CPU overhead |")
    print("|---|---|---|---|---|---|---|")
    for name, times in cli.items():
        med, cpu = statistics.median(times), statistics.median(cli_cpu[name])
        runs = " / ".join(f"{t:.3f}" for t in times)
        print(f"| `focuspull render` ({name}), whole command | {len(times)} | {med:.3f} | {runs} | "
              f"{med - med_bare:+.3f} | {cpu:.3f} | {cpu - cpu_bare:+.3f} |")
    runs = " / ".join(f"{t:.3f}" for t in bare)
    print(f"| `render_coc` alone (this checkout, in-process), same frames | {args.repeats} | {med_bare:.3f} | "
          f"{runs} | | {cpu_bare:.3f} | |")
    if len(cli) > 1:  # rounds run every checkout back to back: their per-round ratios hold under drifting load
        mine = cli["this checkout"]
        print("\npaired time ratio against this checkout (median over rounds): "
              + ", ".join(f"{name} {statistics.median(t / m for t, m in zip(times, mine)):.3f}"
                          for name, times in cli.items() if name != "this checkout"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
