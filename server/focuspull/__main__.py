"""``python -m focuspull ...`` is the ``focuspull`` command."""
from focuspull.commands.cli import console

console()
