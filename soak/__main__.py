"""``python -m soak``: see the package docstring."""

import sys

from soak.cli import main

sys.exit(main())
