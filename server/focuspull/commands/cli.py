"""The ``focuspull`` command line: one registry of subcommands, loaded lazily.

Every subcommand is a module exposing ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int``, registered by module path in :data:`COMMANDS` -- the one place to add
a command.  Only the module of the command being run is imported (``focuspull submit
--help`` never loads torch); a registered module that is not installed gives a clean error.

Exit codes (also in ``focuspull --help``):

* 0 -- success
* 2 -- bad input or usage (unknown option, missing file, impossible lens, ...)
* 3 -- the render failed (an internal error, a server/protocol failure)
* 130 -- interrupted (Ctrl-C / cancelled); finished frames are complete, none is partial

Errors print ``focuspull: error: <message>`` and ``  hint: <what to do>`` on stderr, no
traceback (set ``FOCUSPULL_DEBUG=1`` to get one).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: name -> module path.  The one registry of subcommands.
COMMANDS: dict[str, str] = {
    "render": "focuspull.commands.render",
    "demo": "focuspull.commands.demo",
    "serve": "focuspull.commands.serve",
    "submit": "focuspull.commands.submit",
    "farm": "focuspull.commands.farm",
    "train": "focuspull.commands.train",
}

from focuspull.commands.outcome import (EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED,  # noqa: F401
                                         EXIT_OK, EXIT_USAGE, error, run_command)


class CommandUnavailable(Exception):
    """A registered command whose module cannot be imported."""


def load_command(name: str):
    """Import the module of command ``name`` (raises :class:`CommandUnavailable`)."""
    path = COMMANDS[name]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and (path == exc.name or path.startswith(exc.name + ".")):
            raise CommandUnavailable(f"the '{name}' command is not available in this installation "
                                     f"(module {path} is missing)") from None
        raise CommandUnavailable(f"the '{name}' command needs the Python package "
                                 f"'{exc.name}', which is not installed") from None
    for attr in ("HELP", "add_arguments", "run"):
        if not hasattr(module, attr):
            raise CommandUnavailable(f"module {path} does not define {attr}; it is not a command")
    return module


def _top_help() -> str:
    lines = ["usage: focuspull COMMAND [options]   (focuspull COMMAND --help for its options)", "",
             "Video depth of field for compositing: depth -> focal-plane layers -> bokeh.", "",
             "commands:"]
    for name in COMMANDS:
        try:
            summary = load_command(name).HELP
        except CommandUnavailable:
            summary = "(not available in this installation)"
        lines.append(f"  {name:<8} {summary}")
    lines += ["", "options:", "  -h, --help  show this help", "  --version   print the version",
              "", EXIT_CODES_HELP, "",
              "start here:  focuspull demo      (renders a rack focus into ./focuspull_demo)"]
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse, but its usage errors read like every other focuspull error (``error: ...``
    and ``hint: ...``, exit code 2) instead of the whole usage text."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        error(message, f"see '{self.prog} --help' for the options and their values")
        raise SystemExit(EXIT_USAGE)


def build_parser(name: str, module) -> argparse.ArgumentParser:
    """The argument parser of one command (used by ``main`` and by tests)."""
    parser = _Parser(
        prog=f"focuspull {name}", description=module.HELP,
        epilog=getattr(module, "EPILOG", "") + ("\n\n" if getattr(module, "EPILOG", "") else "")
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return parser


def quiet_openmp_waits() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    Render nodes and workstations run other jobs: with spinning waits (the default) torch's
    two threads on a busy 2-core machine rendered a 1080p frame in 12-22 s instead of 2.5 s
    (bench/speed.py, load ~9).  Must happen before torch loads; commands load it lazily.
    """
    import os  # noqa: PLC0415

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# glibc mallopt() parameters (malloc.h) and the size up to which freed blocks are kept.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
REUSE_FREED_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Let glibc keep freed frame-sized blocks for the next frame instead of unmapping them.

    By default every block over 32 MiB (a 1080p RGBA float frame is 33 MB) is mmap-ed and
    given back to the kernel when freed, so each of the renderer's full-frame buffers pays
    page faults again on every frame: ~68,000 faults and 0.15 s of system time per 1080p
    frame, 0.03 s and ~6,000 faults with this (bench: the same peak RSS).  Blocks up to
    ``REUSE_FREED_BYTES`` then come from the heap, which keeps what is freed.  For a process
    that renders (``focuspull render``); a no-op where the C library is not glibc, or when
    the user set glibc's own ``MALLOC_MMAP_THRESHOLD_``.  Returns whether it was applied.
    """
    import ctypes  # noqa: PLC0415
    import os  # noqa: PLC0415

    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, REUSE_FREED_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                              REUSE_FREED_BYTES))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``focuspull`` console script; returns the exit code."""
    quiet_openmp_waits()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(_top_help())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--version":
        from focuspull import __version__

        print(f"focuspull {__version__}")
        return EXIT_OK
    name = argv[0]
    if name not in COMMANDS:
        error(f"unknown command {name!r}", f"use one of: {', '.join(COMMANDS)} (focuspull --help)")
        return EXIT_USAGE
    try:
        module = load_command(name)
    except CommandUnavailable as exc:
        error(str(exc), "reinstall focuspull with its dependencies (make test sets up .venv)")
        return EXIT_USAGE
    parser = build_parser(name, module)
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message printed)
        return int(exc.code or 0)
    return run_command(module, args)


def console() -> None:
    """The ``focuspull`` console script (and ``python -m focuspull``): :func:`main`, then
    :func:`exit_now` with its code."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown.

    With torch and OpenImageIO loaded, unloading their thousands of modules and objects
    takes 0.35-0.5 s on every run (BENCHMARKS.md), after the work is done.  Nothing is
    lost by skipping it: a command returns only once its frames are fsynced and renamed and
    its threads joined; here the exit handlers run (logging's flush among them) and both
    output streams are flushed.  If a non-daemon thread is still running, the ordinary
    exit waits for it instead, as Python would.
    """
    import atexit  # noqa: PLC0415
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # noqa: SLF001 - what the teardown would have run first
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: let Python report it as it exits
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":  # python -m focuspull.commands.cli
    console()
