"""Service against its floor, per hot path, in one run: polls, acks, a large upload and fetch.

Both run under gunicorn with gunicorn.conf.py's settings (2 workers x 16 threads), on the same
database, side by side: the service (``molecule.wsgi``) and the floor (``bench.floor``, plain
WSGI on psycopg running the service's statements). Request rates come from wrk (2 threads, 16
connections), the sides alternating, repeated; the large file goes one at a time on one
connection, the sides alternating too. The head poll also runs against ``bench.cached_poll``,
the service with a cache that never misses: the prototype on the path to 1.0x.
"""
