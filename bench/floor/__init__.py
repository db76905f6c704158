"""The floor: the service's per-request hot paths as plain WSGI on psycopg, with no framework.

Issue 20 measures the service against this. Each route does the same work as the service's
(the same authentication, both token tiers compared; the same statements or fewer; the same
JSON), written as the best raw code: prepared statements, binary results where the service
reads binary, one connection per thread as gunicorn's gthread workers give Django. Run it
under gunicorn with gunicorn.conf.py's settings (``bench.throughput`` does):

    gunicorn -c gunicorn.conf.py bench.floor.app:application

It serves only what the bench sends; anything else is a plain 404.
"""

from __future__ import annotations

import os

import django

# The service's SQL text lives in its managers, which load with Django's app registry; the
# floor loads it once, at start, to read those constants. No Django code runs per request.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
django.setup()
