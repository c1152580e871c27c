"""Speed and memory of the renderer against the scatter baseline, side by side in one run.

    .venv/bin/python bench/speed.py            # 1080p, max CoC radius 32 px, + 4K peak RAM
    .venv/bin/python bench/speed.py --quick    # fewer repeats, smaller 4K check
    .venv/bin/python bench/speed.py --against /path/to/main .   # + other checkouts, paired ratios
    .venv/bin/python bench/speed.py --as-commands   # with the allocator setting the commands use

The scene is the demo shot (focuspull.commands.demo_scene) at 1920x1080, focused on the ball at
4.5 m, with the f-stop solved so the largest CoC radius in the frame is exactly 32 px
(the near pillar).  Times are medians of several runs of the whole render call, CoC
given (depth conversion is not timed).  Peak RAM is measured in a child process that
renders one 3840x2160 frame with a 64 px maximum radius: its peak RSS, and the part of it
the render added on top of the inputs.  Prints a Markdown table for BENCHMARKS.md.

``--as-commands`` times the renderer as ``focuspull render`` and ``focuspull serve`` run it:
they call ``commands.cli.reuse_freed_memory()`` at start-up (glibc keeps freed frame-sized
blocks instead of unmapping them), which this process and the ``--against`` children then do
too (a checkout without it is timed without).  Without the flag: a bare library call.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

# As the focuspull command does (commands/cli.py quiet_openmp_waits): idle OpenMP threads
# sleep instead of spinning, which on a shared machine is the difference between 2.5 s and
# 12-22 s a frame.  Set before torch loads; an OMP_WAIT_POLICY already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from focuspull.commands.cli import reuse_freed_memory  # noqa: E402
from focuspull.commands.demo_scene import DemoScene  # noqa: E402
from focuspull.stages.lens import ThinLens, coc_from_depth  # noqa: E402
from focuspull.stages.render.layered import render_coc  # noqa: E402
from scatter import scatter_render  # noqa: E402

FOCUS_M = 4.5


def scene(width: int, height: int, max_radius_px: float):
    """Demo frame and its CoC with the f-stop chosen so max |CoC| == max_radius_px."""
    frame = DemoScene(width, height, 48).frame(20)
    wide_open = ThinLens(50.0, 1.0, 36.0, FOCUS_M)
    peak = float(np.abs(coc_from_depth(frame.depth_m, wide_open)).max())
    lens = ThinLens(50.0, peak / max_radius_px, 36.0, FOCUS_M)
    return frame.rgb, coc_from_depth(frame.depth_m, lens), lens


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peak_ram_child(width: int, height: int, max_radius_px: float) -> dict:
    """Render one frame in a fresh process that only loads the inputs; its peak RSS (MiB)."""
    rgb, coc, _ = scene(width, height, max_radius_px)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "rgb.npy"), rgb)
        np.save(os.path.join(tmp, "coc.npy"), coc)
        del rgb, coc
        # Linux carries the parent's RSS high-water mark into a forked child: reset it
        # (clear_refs 5) and read VmHWM, the peak since the reset, in KiB.
        code = (
            "import json, numpy as np\n"
            "def hwm():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM'): return int(line.split()[1]) / 1024\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            "from focuspull.stages.render.layered import render_coc\n"
            "rgb = np.load(%r); coc = np.load(%r)\n"
            "before = hwm()\n"
            "render_coc(rgb, coc)\n"
            "print(json.dumps({'inputs_mib': before, 'peak_mib': hwm()}))\n"
        ) % (os.path.join(tmp, "rgb.npy"), os.path.join(tmp, "coc.npy"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_CHILD_RENDER = (
    "import json, sys, time, numpy as np\n"
    "from focuspull.stages.render.layered import render_coc\n"
    "rgb = np.load(sys.argv[1]); coc = np.load(sys.argv[2])\n"
    "render_coc(rgb[:256, :256], coc[:256, :256])\n"
    "render_coc(rgb, coc)  # a shot's later frames: kernel spectra cached, buffers reused\n"
    "print('ready', flush=True)\n"
    "for _ in sys.stdin:  # one timed render per line\n"
    "    t = time.perf_counter(); render_coc(rgb, coc)\n"
    "    print(json.dumps(time.perf_counter() - t), flush=True)\n"
)


_AS_COMMANDS = (
    "try:\n"
    "    from focuspull.commands.cli import reuse_freed_memory; reuse_freed_memory()\n"
    "except ImportError:  # an older checkout\n"
    "    pass\n"
)


def against(trees: list[str], rgb, coc, rounds: int, as_commands: bool = False) -> dict[str, list[float]]:
    """``render_coc`` of other checkouts (``DIR/server``), one resident child process each
    (warmed by one untimed render, as the in-process row), asked for one render at a time
    in turn, the order reversed every round: renders seconds apart meet the same load on a
    shared machine, so the per-round ratios (:func:`paired_ratios`) hold even when the
    machine's speed drifts by more than the difference being measured."""
    times: dict[str, list[float]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, "rgb.npy"), os.path.join(tmp, "coc.npy")]
        np.save(paths[0], rgb)
        np.save(paths[1], coc)
        children = {}
        try:
            for tree in trees:
                env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(tree), "server"))
                code = (_AS_COMMANDS if as_commands else "") + _CHILD_RENDER
                child = subprocess.Popen([sys.executable, "-c", code, *paths], env=env, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                children[tree] = child
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"the render child of {tree} failed to start")
            for r in range(rounds):
                for tree in (trees if r % 2 == 0 else trees[::-1]):
                    child = children[tree]
                    child.stdin.write("render\n")
                    child.stdin.flush()
                    times[tree].append(json.loads(child.stdout.readline()))
        finally:
            for child in children.values():
                child.stdin.close()
                child.wait()
    return times


def paired_ratios(times: dict[str, list[float]], reference: str) -> dict[str, float]:
    """Median over rounds of each tree's time / ``reference``'s time in the same round."""
    return {tree: statistics.median(a / b for a, b in zip(ts, times[reference])) for tree, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="focuspull runs (median)")
    parser.add_argument("--baseline-repeats", type=int, default=3, help="scatter runs (median)")
    parser.add_argument("--quick", action="store_true", help="1 repeat each, 4K check at 1080p size")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--as-commands", action="store_true",
                        help="render with the allocator setting `focuspull render` / `serve` use "
                             "(commands.cli.reuse_freed_memory), here and in the --against children")
    parser.add_argument("--against", nargs="+", metavar="DIR", default=[],
                        help="also time these checkouts' render_coc (e.g. the main branch and this one), "
                             "alternating round by round, for old/new ratios in one run")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.baseline_repeats = 2, 1

    if args.as_commands:
        reuse_freed_memory()
    rgb, coc, lens = scene(1920, 1080, 32.0)
    # Warm-up as the --against children do: a shot's later frames find kernel spectra
    # cached and buffers reused (a first render also pays those: bench/shot.py has it).
    render_coc(rgb, coc)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"torch {torch.__version__}, {torch.get_num_threads()} threads"
                          + (", as the commands run (reuse_freed_memory)" if args.as_commands else ""),
               "fstop": round(lens.fstop, 3), "coc_range_px": [float(coc.min()), float(coc.max())]}
    fp = timed(lambda: render_coc(rgb, coc), args.repeats)
    results["focuspull_cpu_s"] = fp
    sc = timed(lambda: scatter_render(rgb, coc), args.baseline_repeats)
    results["scatter_cpu_s"] = sc
    if torch.cuda.is_available():
        render_coc(rgb, coc, device="cuda")
        results["focuspull_cuda_s"] = timed(lambda: (render_coc(rgb, coc, device="cuda"),
                                                     torch.cuda.synchronize()), args.repeats)
    if args.against:
        results["against_s"] = against(args.against, rgb, coc, args.repeats, args.as_commands)
    results["load_average"] = list(os.getloadavg())
    size = (1920, 1080) if args.quick else (3840, 2160)
    results["peak_ram"] = {"size": list(size), "max_radius_px": 64.0, **peak_ram_child(*size, 64.0)}

    med_fp, med_sc = statistics.median(fp), statistics.median(sc)
    print(f"machine: {results['machine']}")
    print(f"scene: demo frame 20, 1920x1080, ThinLens 50 mm f/{lens.fstop:.2f} focus {FOCUS_M} m, "
          f"CoC {coc.min():.1f}..{coc.max():.1f} px\n")
    print("| renderer | device | runs | median s/frame | ratio vs scatter |")
    print("|---|---|---|---|---|")
    print(f"| focuspull render_coc | cpu | {len(fp)} | {med_fp:.3f} | {med_sc / med_fp:.1f}x faster |")
    print(f"| scatter baseline (bench/scatter.py) | cpu | {len(sc)} | {med_sc:.3f} | 1.0x |")
    if "focuspull_cuda_s" in results:
        med_gpu = statistics.median(results["focuspull_cuda_s"])
        print(f"| focuspull render_coc | cuda | {args.repeats} | {med_gpu:.3f} | {med_sc / med_gpu:.1f}x |")
    against_s = results.get("against_s", {})
    for tree, ts in against_s.items():
        print(f"| render_coc of {tree} (resident child, alternating) | cpu | {len(ts)} | "
              f"{statistics.median(ts):.3f} | {med_sc / statistics.median(ts):.1f}x faster |")
    if len(against_s) > 1:
        first = next(iter(against_s))
        ratios = paired_ratios(against_s, first)
        results["paired_ratio"] = ratios
        print(f"\npaired time ratio against {first} (median over rounds of each round's ratio): "
              + ", ".join(f"{tree} {ratio:.3f}" for tree, ratio in ratios.items()))
    print(f"\nload average during the run (1, 5, 15 min): {results['load_average']}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}")
    ram = results["peak_ram"]
    print(f"\npeak RSS rendering {size[0]}x{size[1]}, max radius 64 px: {ram['peak_mib']:.0f} MiB "
          f"(inputs and libraries {ram['inputs_mib']:.0f} MiB, render +{ram['peak_mib'] - ram['inputs_mib']:.0f} MiB)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
