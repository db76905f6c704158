"""Entry point: ``python -m bench [--quick] [--only NAME ...]``."""

import sys

from bench.cli import main

sys.exit(main())
