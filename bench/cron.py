"""A day of cron sweeps: ``python -m bench.cron [--runs 288]`` against DATABASE_URL.

Each run inserts a few eligible pending uploads and then runs ``manage.py sweep_uploads
--json`` as cron would, with PROMETHEUS_MULTIPROC_DIR set to a fresh directory. At the end it
prints, as one JSON line: the files left in that directory (0 expected), the rows the runs
reported deleted, the rows actually gone, and the rise of molecule_pending_uploads_swept_total
on /metrics (all three must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from devtools.processes import run_manage

INSERT_SQL = """
INSERT INTO pending_uploads
       (workspace_id, content, size_bytes, filename, mimetype, created_at, acked_at, expires_at)
SELECT gen_random_uuid(), '\\x2a'::bytea, 1, 'cron-' || g, 'text/plain', now() - interval '3 h',
       CASE WHEN g %% 2 = 0 THEN now() - interval '2 h' END,
       CASE WHEN g %% 2 = 0 THEN now() + interval '1 d' ELSE now() - interval '1 m' END
  FROM generate_series(1, %(count)s) AS g
"""


def swept_on_metrics() -> dict[str, float]:
    """The swept counter as the project's /metrics view renders it (Django set up here)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    django.setup()
    from django.db import connection
    from prometheus_client.parser import text_string_to_metric_families

    from molecule.exposition import metrics_page

    text = metrics_page()[0].decode()
    connection.close()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "molecule_pending_uploads_swept_total"
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=288, help="cron runs (288 = 5 min for 24 h)")
    parser.add_argument("--rows", type=int, default=10, help="eligible rows inserted per run")
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        sys.exit("bench.cron: set DATABASE_URL (the database is swept for real)")
    metrics_dir = Path(tempfile.mkdtemp(prefix="molecule-cron-metrics-"))
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    before = swept_on_metrics()
    reported = {"acked": 0, "expired": 0}
    inserted = 0
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(args.runs):
            conn.execute(INSERT_SQL, {"count": args.rows})
            inserted += args.rows
            result = run_manage(env, "sweep_uploads", "--json")
            report = json.loads(result.stdout)
            reported["acked"] += report["acked"]
            reported["expired"] += report["expired"]
        left = conn.execute("SELECT count(*) FROM pending_uploads WHERE filename LIKE 'cron-%'")
        left_count = left.fetchone()[0]
    after = swept_on_metrics()
    files = sorted(os.listdir(metrics_dir))
    print(
        json.dumps(
            {
                "runs": args.runs,
                "files_left": len(files),
                "rows_inserted": inserted,
                "rows_gone": inserted - left_count,
                "reported_deleted": reported,
                "metrics_rise": {k: after[k] - before.get(k, 0.0) for k in ("acked", "expired")},
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    exact = after["acked"] - before.get("acked", 0) == reported["acked"] and (
        after["expired"] - before.get("expired", 0) == reported["expired"]
    )
    return 0 if not files and exact and sum(reported.values()) == inserted - left_count else 1


if __name__ == "__main__":
    sys.exit(main())
