#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    try:
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
        from django.db import OperationalError
    except ImportError:
        sys.exit(
            "Django is not installed for this Python: use .venv/bin/python, "
            "or create .venv with bin/run, bin/manage or bin/test"
        )

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A configuration mistake is the operator's to fix: one line, no traceback.
        sys.exit(f"configuration error: {exc}")
    except OperationalError as exc:
        # The driver's message spans lines (host, hint); its first line names the cause.
        lines = str(exc).strip().splitlines()
        sys.exit(f"database unavailable: {lines[0] if lines else type(exc).__name__}")
    except KeyboardInterrupt:
        # Ctrl-C is how a long-running command (qcluster, serve_metrics) is stopped.
        sys.exit(130)


if __name__ == "__main__":
    main()
