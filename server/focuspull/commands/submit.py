"""``focuspull submit``: send a job to a running server and stream its progress.

The job is a JSON file (a RenderJob map, see ``focuspull.spec.job``) with a few of the
``render`` options layered on top; the server does the work, so this command needs
no torch and starts fast.  Paths are the server's: they must lie under its roots.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

HELP = "send a render job (JSON file and/or options) to a running 'focuspull serve'"

# Exit codes are those of every command (focuspull.commands.cli): 0 done, 2 bad job or options
# (also a path the server refuses, or a job message it cannot read), 3 failed (including an
# unreachable server), 130 cancelled / interrupted.  Errors propagate to cli.run_command, which maps them.
EXIT_OK, EXIT_CANCELLED = 0, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", help="job JSON file (a RenderJob map); options below override it")
    parser.add_argument("--input", metavar="PATTERN", help="input sequence, e.g. shot/plate.####.exr")
    parser.add_argument("--depth", metavar="PATTERN", help="separate depth sequence (sets depth.kind=sequence)")
    parser.add_argument("--output", metavar="PATTERN", help="output sequence, e.g. out/plate_dof.####.exr")
    parser.add_argument("--frames", metavar="RANGE", help="frames: 1001-1010, 1001,1005 or 1001-1100x2")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", default=None, help="keep frames already written")
    mode.add_argument("--overwrite", action="store_true", default=None, help="replace existing frames")
    parser.add_argument("--endpoint", default=os.environ.get("FOCUSPULL_ENDPOINT", "tcp://127.0.0.1:5690"),
                        help="server endpoint (env: FOCUSPULL_ENDPOINT; default: %(default)s)")
    parser.add_argument("--token", default=None,
                        help="auth token (env: FOCUSPULL_TOKEN, better: a command line is visible in ps)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds of server silence before giving up (default: %(default)s)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    parser.add_argument("--jobs", action="store_true", help="list the server's jobs and exit")
    parser.add_argument("--cancel", metavar="JOB", help="cancel a job by id and exit")


def parse_frames(text: str) -> list[int]:
    """'1001-1010', '1001,1005,1010', '1001-1100x2' (step) -> sorted frame numbers.

    ``focuspull.io.frames.parse_frame_range`` (pure Python): a reversed or empty range
    is an InputError, never an empty list (which a job reads as "every frame").
    """
    from focuspull.io.frames import parse_frame_range

    return parse_frame_range(text)


def build_job(args: argparse.Namespace) -> dict[str, Any]:
    """The job map: the JSON file (if any) with the command-line options applied."""
    from focuspull.errors import InputError

    job: dict[str, Any] = {}
    if args.job:
        try:
            with open(args.job) as fh:
                job = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read job file {args.job}: {exc}",
                             "pass a JSON file holding one RenderJob map") from None
        if not isinstance(job, dict):
            raise InputError(f"job file {args.job} holds a {type(job).__name__}, not a map",
                             "the file must be one JSON object")
    if args.input:
        job.setdefault("input", {})["pattern"] = args.input
    if args.depth:
        job.setdefault("depth", {}).update(kind="sequence", pattern=args.depth)
    if args.output:
        job.setdefault("output", {})["pattern"] = args.output
    if args.frames:
        job["frames"] = parse_frames(args.frames)
    if args.resume:
        job.setdefault("output", {})["resume"] = True
    if args.overwrite:
        job.setdefault("output", {})["overwrite"] = True
    if not job:
        raise InputError("no job given", "pass a job JSON file and/or --input/--output options")
    return job


def run(args: argparse.Namespace) -> int:
    from focuspull.client import Client
    from focuspull.errors import FocuspullError, ProtocolError

    with Client(args.endpoint, token=args.token, timeout_s=args.timeout, retries=1) as client:
        if args.jobs:
            for row in client.jobs():
                print(f"{row['job']}  {row['state']:<9}  {row['done']}/{row['total']}  {row['device']}")
            return EXIT_OK
        if args.cancel:
            print(f"{args.cancel}: {client.cancel(args.cancel)}")
            return EXIT_OK
        job = build_job(args)
        try:
            handle = client.submit(job)
        except ProtocolError as exc:  # the server could not take the message: a bad job (exit 2)
            from focuspull.commands.outcome import EXIT_USAGE, error

            error(exc.message, exc.hint)
            return EXIT_USAGE
        if not args.quiet:
            print(f"job {handle.id} queued (position {handle.position})", file=sys.stderr)
        try:
            for event in handle:
                if not args.quiet:
                    where = f" -> {event['path']}" if event.get("path") else ""
                    fps = "--" if event["fps"] is None else f"{event['fps']:.2f}"
                    eta = "--" if event["eta_s"] is None else f"{event['eta_s']:.0f}"
                    print(f"frame {event['frame']}  {event['done']}/{event['total']}  {fps} fps  "
                          f"eta {eta} s{where}", file=sys.stderr)
        except KeyboardInterrupt:
            # Cancel on the server too, then wait (bounded by the timeout) for it to stop.
            print("interrupted: cancelling the job on the server", file=sys.stderr)
            try:
                handle.cancel()
                handle.result()
            except FocuspullError:
                pass
            return EXIT_CANCELLED
        if not args.quiet:
            kept = f", {len(handle.skipped)} kept from before" if handle.skipped else ""
            print(f"job {handle.id} done: {len(handle.rendered or [])} frame(s) rendered{kept} in "
                  f"{handle.elapsed_s or 0:.1f} s", file=sys.stderr)
        return EXIT_OK


if __name__ == "__main__":  # python -m focuspull.commands.submit: the same as `focuspull submit`
    from focuspull.commands.cli import main

    sys.exit(main(["submit", *sys.argv[1:]]))
