"""Transport cost of the render server: in-band frames through ZeroMQ vs calling run_job.

Starts a real ``focuspull serve`` on 127.0.0.1 (a free port) and measures, for N in-band
frames of float32 RGB + Z (1080p by default):

* echo   -- submit with ``echo``: frames go to the server and come straight back
            (the pure transport: encode, TCP loopback both ways, decode, no render);
* direct -- ``focuspull.pipeline.run.run_job`` in this process (the bare render);
* server -- the same job submitted through the server (render + transport).

Each is the median of ``--repeats`` runs; overhead = server - direct.  Prints a Markdown
table.  Usage::

    .venv/bin/python bench/transport.py [--frames 4] [--repeats 3] [--width 1920 --height 1080]
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

from focuspull.client import Client  # noqa: E402
from focuspull.errors import FocuspullError  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(n: int, h: int, w: int) -> dict:
    rng = np.random.default_rng(0)
    depth = np.linspace(1.0, 8.0, h * w, dtype=np.float32).reshape(h, w)
    return {1001 + i: {"rgba": rng.random((h, w, 3), dtype=np.float32), "depth": depth} for i in range(n)}


def job_for(frames) -> dict:
    # A modest blur (f/8, 35 mm): the point is the transport, not a heavy render.
    return {"frames": list(frames), "lens": {"mode": "physical", "focal_length_mm": 35.0, "fstop": 8.0},
            "focus": {"mode": "distance", "distance_m": 2.0}}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--skip-render", action="store_true", help="only the echo (transport) row")
    args = ap.parse_args()

    clip = make_clip(args.frames, args.height, args.width)
    job = job_for(clip)
    mb = sum(v["rgba"].nbytes + v["depth"].nbytes for v in clip.values()) / 2**20
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    server = subprocess.Popen([sys.executable, "-m", "focuspull.commands.cli", "serve", "--bind", endpoint,
                               "--device", "cpu", "--log-level", os.environ.get("FOCUSPULL_BENCH_LOG", "warning")], env=env)
    rows = []
    try:
        with Client(endpoint, timeout_s=120, retries=0) as c:
            for _ in range(100):
                try:
                    c.hello()
                    break
                except FocuspullError:
                    time.sleep(0.2)
            # Warm-up: first connection, first torch import in the server's worker.
            c.submit(job_for([1001]), inband={1001: clip[1001]}, echo=True).result()
            echo_s = median_time(lambda: c.submit(job, inband=clip, echo=True).result(), args.repeats)
            rows.append(("echo (transport only, both ways)", echo_s))
            if not args.skip_render:
                from focuspull.spec.job import RenderJob
                from focuspull.pipeline.run import run_job

                spec = RenderJob.from_dict(job)
                run_job(RenderJob.from_dict(job_for([1001])), inband={1001: clip[1001]})  # warm-up
                c.submit(job_for([1001]), inband={1001: clip[1001]}).result()  # warm-up
                # Interleaved, so drift in machine load hits both paths alike.
                direct, served = [], []
                for _ in range(args.repeats):
                    direct.append(median_time(lambda: run_job(spec, inband=clip), 1))
                    served.append(median_time(lambda: c.submit(job, inband=clip).result(), 1))
                direct_s, served_s = statistics.median(direct), statistics.median(served)
                rows.append(("direct run_job (bare render)", direct_s))
                rows.append(("through the server (render + transport)", served_s))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    n = args.frames
    print(f"\nTransport benchmark: {n} in-band frames of {args.width}x{args.height} float32 RGB + Z "
          f"({mb:.0f} MiB out, {mb * 3 / 4:.0f} MiB back), median of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}\n")
    print("| path | seconds | frames/s | ms/frame | MiB/s (out+back) |")
    print("|---|---:|---:|---:|---:|")
    for name, secs in rows:
        print(f"| {name} | {secs:.3f} | {n / secs:.2f} | {1000 * secs / n:.1f} | {mb * 1.75 / secs:.0f} |")
    if len(rows) == 3:
        overhead = rows[2][1] - rows[1][1]
        print(f"\nserver overhead vs the bare render: {overhead:+.3f} s for {n} frames "
              f"({1000 * overhead / n:+.1f} ms/frame, {100 * overhead / rows[1][1]:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
