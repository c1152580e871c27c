"""``python -m focuspull ...`` is the ``focuspull`` command."""
from focuspull.cli import main

raise SystemExit(main())
