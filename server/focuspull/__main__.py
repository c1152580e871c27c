"""``python -m focuspull ...`` is the ``focuspull`` command."""
from focuspull.commands.cli import main

raise SystemExit(main())
