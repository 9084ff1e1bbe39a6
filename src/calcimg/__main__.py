"""``python -m calcimg`` is the ``calcimg`` command."""

from calcimg.cli import main

raise SystemExit(main())
