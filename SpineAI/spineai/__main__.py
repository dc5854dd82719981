"""``python -m spineai`` runs the command line (used by the Slicer modules with Slicer's Python)."""

from .cli import main

raise SystemExit(main())
