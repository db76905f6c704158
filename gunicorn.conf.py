"""gunicorn settings, read from the working directory: a start-up check of the settings."""

import os
import sys


def on_starting(server: object) -> None:
    """Refuse to start, in one line, when the settings are wrong: before any worker forks.

    Left to the workers, each one fails alone and gunicorn's master, reaping two at once,
    prints its own traceback.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 - importing the settings is the check
    except ImproperlyConfigured as exc:
        sys.exit(f"configuration error: {exc}")
