"""``python -m whizrouter``: the same as the ``whizrouter`` command."""

from whizrouter.cli import main

raise SystemExit(main())
