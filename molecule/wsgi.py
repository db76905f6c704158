"""WSGI entry point for gunicorn."""

import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")

try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    message = f"configuration error: {exc}"
    try:
        from gunicorn.errors import AppImportError
    except ImportError:  # another WSGI server: still one line, no traceback
        raise SystemExit(message) from None
    # gunicorn prints this one line and stops its master too, instead of rebooting workers.
    raise AppImportError(message) from None

# Only the web processes cut database waits at DB_CLIENT_TIMEOUT (molecule.dbdeadline).
from molecule import dbdeadline

dbdeadline.enable()
