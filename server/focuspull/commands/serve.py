"""``focuspull serve``: run the render server.

Options come from the one registry in ``focuspull.service.config.OPTIONS``;
precedence is command line > environment (FOCUSPULL_*) > --config file > default.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

HELP = "run the render server (ZeroMQ) that Nuke, Resolve and 'focuspull submit' talk to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from focuspull.service.config import OPTIONS

    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML file with server options (env: FOCUSPULL_CONFIG)")
    for opt in OPTIONS:
        # default=None everywhere: 'not given' must be distinguishable so the
        # environment and the file can fill it in.
        kwargs = dict(default=None, metavar=opt.metavar,
                      help=f"{opt.help} (env: {opt.env}; default: {opt.default!r})")
        if opt.name == "roots":
            parser.add_argument("--root", dest="roots", action="append", **kwargs)
        else:
            parser.add_argument(opt.flag, dest=opt.name, **kwargs)


def run(args: argparse.Namespace) -> int:
    from focuspull.errors import FocuspullError
    from focuspull.service.config import OPTIONS, load_file, resolve

    # Config errors (InputError) propagate: cli.run_command prints them and exits 2.
    file = load_file(args.config or os.environ.get("FOCUSPULL_CONFIG"))
    config = resolve({o.name: getattr(args, o.name, None) for o in OPTIONS}, os.environ, file)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "token", None):
        logging.getLogger("focuspull.service").warning(
            "--token on the command line is visible to every user of this machine (ps); "
            "prefer FOCUSPULL_TOKEN or the config file")
    import zmq

    from focuspull.commands.cli import reuse_freed_memory
    from focuspull.service.server import Server

    reuse_freed_memory()  # as `focuspull render`: frame-sized buffers reused, not faulted in per frame
    server = Server(config)
    # SIGTERM/SIGINT only set a flag: the loop notices within one poll interval,
    # cancels running jobs between frames (nothing partial is written) and exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    try:
        server.serve()
        # Shutdown is done; more signals (a second SIGTERM from an impatient init system) must
        # not kill the process now: Python resets its own handlers to the default (terminate)
        # while it finalises, an ignored signal stays ignored, so the exit status stays 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
    except FocuspullError:
        raise
    except zmq.ZMQError as exc:  # zmq bind errors and the like: say what, exit non-zero
        from focuspull.commands.outcome import EXIT_FAILED, error

        error(f"cannot serve on {config.bind}: {exc}", "is another server using that port? pick "
              "another with --bind")
        return EXIT_FAILED
    return 0


if __name__ == "__main__":  # python -m focuspull.commands.serve: the same as `focuspull serve`
    from focuspull.commands.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
