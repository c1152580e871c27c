"""Subcommands of the ``focuspull`` command line.

Each module here exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and is registered by module path in ``focuspull.commands.cli.COMMANDS``.
Modules must import nothing heavy (torch, OpenImageIO) at import time: ``focuspull
--help`` imports all of them to list their one-line help.
"""
