"""How a command ends: exit codes, and errors printed the one way the CLI prints them.

Every subcommand's failures become exit codes here (:func:`run_command`), so ``render``,
``serve``, ``submit`` and the hosts' terminal modes (``nuke -t``) agree.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    success
  2    bad input or usage (the message says what to fix)
  3    the render failed
  130  interrupted (Ctrl-C); finished frames are complete, none is partial"""


def error(message: str, hint: str = "") -> None:
    """Print a user-facing error the one way the CLI prints errors."""
    sys.stderr.write(f"focuspull: error: {message}\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")
    sys.stderr.flush()


def in_cli_words(exc) -> tuple[str, str]:
    """(message, hint) with the job field at fault named by its option (``--fstop``)."""
    from focuspull.spec.fields import translate

    field = getattr(exc, "field", None)
    return translate(exc.message, field, "cli"), translate(exc.hint, field, "cli")


def run_command(module, args: argparse.Namespace) -> int:
    """Run a parsed command, turning every failure into a message and an exit code."""
    from focuspull.errors import Cancelled, FocuspullError, InputError, ModelError, PathPolicyError

    try:
        return int(module.run(args) or 0)
    except Cancelled as exc:
        error(*in_cli_words(exc))
        return EXIT_INTERRUPTED
    except (InputError, ModelError, PathPolicyError) as exc:
        error(*in_cli_words(exc))
        return EXIT_USAGE
    except FocuspullError as exc:
        error(*in_cli_words(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        error("interrupted", "finished frames are complete on disk; run again with --resume")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an environment failure: still no traceback by default
        if os.environ.get("FOCUSPULL_DEBUG"):
            traceback.print_exc()
        error(f"render failed: {type(exc).__name__}: {exc}",
              "set FOCUSPULL_DEBUG=1 to see the traceback, and report it with the command you ran")
        return EXIT_FAILED


