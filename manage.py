#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Management commands (cron sweeps, qcluster, the shell) never run prometheus_client in
# multiprocess mode: what they count goes to the metric_totals table, and a process in that
# mode writes per-pid files into the directory for every metric value it creates, which no one
# removes. Only gunicorn's workers (molecule.wsgi) share the directory. This is the one place.
MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def main() -> None:
    # Before anything imports prometheus_client, which reads the variable once, at import.
    for name in MULTIPROC_VARIABLES:
        os.environ.pop(name, None)
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
        # Ctrl-C is how a long-running command (qcluster, runserver) is stopped.
        sys.exit(130)


if __name__ == "__main__":
    main()
