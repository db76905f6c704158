"""Soak the real service (gunicorn + qcluster on PostgreSQL) with upload traffic, then judge it.

Usage: .venv/bin/python -m soak [--minutes 10] [--clients 4] [--json] [--keep-db]

Database: with DATABASE_URL set, the script creates its own database (``--database-name``,
default ``molecule_soak``) on that server, dropping it first if it exists and again at the end
unless ``--keep-db``; the database named in the URL is never touched. Without DATABASE_URL it
starts a throwaway embedded PostgreSQL (pgserver) in a temporary directory.

The service runs with a 20 s upload TTL, a 5 s ack retention and a sweep every 5 s. django-q2's
scheduler only ticks about every 30 s and its schedules have minute resolution, so a 5 s sweep
cannot come from the schedule table. Instead this driver enqueues
``pending_uploads.tasks.sweep_pending_uploads`` every 5 s with ``django_q.tasks.async_task``
(ORM broker). The real qcluster worker executes each sweep, exactly as it executes scheduled
ones, so its counts reach the web ``/metrics`` through the database (metric_totals).
The minute schedule keeps running too; it only adds sweeps.

Several client threads then drive loopback traffic for N minutes: register poll workspaces,
upload 1-3 small files, list them, fetch them (checking the bytes) and ack them, with about
10 % of uploads never fetched so that they expire. A sampler records the table's row count and
pg_total_relation_size, and the RSS of every service process. When the traffic stops, the script
waits out the retention, runs a final sweep in the worker and checks:

- no_5xx:         no response was 5xx and no request failed at the transport level;
- responses:      every other answer was the expected 200, with the uploaded bytes intact;
- table_bounded:  at every sample, the row count stayed below the uploads of the preceding
                  TTL + retention + 2 x interval (+50); and pg_total_relation_size stayed
                  below 2 MiB + (max file + 1 KiB) x the uploads of the busiest window of that
                  length plus 3 autovacuum naptimes, since each upload leaves up to three row
                  versions whose space is reused only once autovacuum has reclaimed it (with
                  autovacuum off, the size grows with the traffic and this check fails);
- sweeps:         every enqueued sweep succeeded and the error counter stayed at 0;
- acked_gone:     after the final sweep no acked row and no expired row is left;
- metrics_match:  /metrics' swept acked + expired equals the uploads created minus those left,
                  and the database's activity log saw exactly the uploads the clients saw;
- exercised:      both outcomes, acked and expired, were swept at least once;
- memory:         no service process ended above 2 x its starting RSS + 50 MiB.

Prints a report (or one line of JSON with --json) and exits 0 when every check passed, 1 if not.
"""
