"""`python -m desktop` → the `integmed` command (the app when no subcommand is given)."""

import sys

from desktop.cli import main

sys.exit(main())
