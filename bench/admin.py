"""The admin at a million rows: every page kind timed in-process, and the 500-term search.

    .venv/bin/python -m bench.admin [--rows 1000000] [--search-rows 200000] [--runs 5]

Builds pending_uploads with generate_series (16-byte contents, the timestamps of
bench/datasets.py spread over about 18 hours, 1,000 workspaces, five filename words and five
content-type families), then requests each admin page through Django's test client as a
logged-in superuser, DEBUG off, and prints the median time per page with its min and max.
Last, it gives 100,000 unacked rows one expires_at and times the expired filter again.
Runs against DATABASE_URL's server when set, otherwise an embedded PostgreSQL; results go to
bench/results/admin.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.database import BenchDatabases, Server, close_django_connections, django_setup
from bench.datasets import ROW_TIMES_SQL, UPLOAD_WORKSPACES, WORKSPACE_OF_SQL

RESULTS = Path(__file__).resolve().parent / "results" / "admin.json"
CHANGELIST = "/admin/pending_uploads/pendingupload/"
TARGET_MS = 100.0
COUNT_RE = re.compile(r'<span class="result-count"[^>]*>(.*?)</span>', re.S)
SEARCH_TARGET_MS = 1000.0
logger = logging.getLogger("bench")

WORDS = ("report", "invoice", "photo", "notes", "scan")
FAMILIES = (
    ("application/pdf", "pdf"),
    ("image/png", "png"),
    ("text/plain", "txt"),
    ("video/mp4", "mp4"),
    ("audio/mpeg", "mp3"),
)

# Small contents so a million rows load in about a minute; the admin never reads them.
INSERT_SQL = f"""
INSERT INTO pending_uploads (file_id, workspace_id, content, size_bytes, filename, mimetype,
                             created_at, fetched_at, acked_at, expires_at)
SELECT gen_random_uuid(), {WORKSPACE_OF_SQL.format(i="t.i", n=UPLOAD_WORKSPACES)},
       decode(md5(t.i::text), 'hex'), 16,
       (ARRAY{list(WORDS)})[1 + mod(t.i, {len(WORDS)})] || '-' || t.i || '.'
           || (ARRAY{[ext for _, ext in FAMILIES]})[1 + mod(t.i / 5, {len(FAMILIES)})],
       (ARRAY{[mime for mime, _ in FAMILIES]})[1 + mod(t.i / 5, {len(FAMILIES)})],
       t.created_at, t.fetched_at, t.acked_at, t.expires_at
  FROM ({ROW_TIMES_SQL}) AS t
"""


# A backlog that expired at one instant (rows whose TTL ran out together, or an operator's
# UPDATE): state=expired orders by (expires_at, file_id) descending, so on an index of
# expires_at alone PostgreSQL sorts every tied row to find the newest 100.
TIED_EXPIRED_ROWS = 100_000
TIE_EXPIRY_SQL = """
UPDATE pending_uploads SET expires_at = now() - interval '30 minutes'
 WHERE file_id IN (SELECT file_id FROM pending_uploads WHERE acked_at IS NULL
                    ORDER BY created_at, file_id LIMIT %(rows)s)
"""


def build(db: BenchDatabases, rows: int) -> None:
    started = time.perf_counter()
    db.fresh()
    with db.connect() as conn:
        conn.execute(INSERT_SQL, {"rows": rows, "eligible": True})
    db.settle(("pending_uploads",))
    logger.info("built %d rows in %.1f s", rows, time.perf_counter() - started)


def tie_expiry(db: BenchDatabases, rows: int) -> None:
    """Give the ``rows`` oldest unacked rows one expires_at, 30 minutes ago."""
    with db.connect() as conn:
        conn.execute(TIE_EXPIRY_SQL, {"rows": rows})
    db.settle(("pending_uploads",))


def time_page(client: Any, url: str, params: dict[str, Any], runs: int) -> dict[str, Any]:
    """Median, min and max milliseconds of ``runs`` requests after one warm-up request."""
    response = client.get(url, params)
    if response.status_code != 200:
        # A page past the last one redirects (?e=1): only on a table too small for it.
        return {"median_ms": None, "min_ms": None, "max_ms": None, "status": response.status_code}
    found = COUNT_RE.search(response.content.decode())
    shown = found.group(1).strip() if found else None
    from django.db import connection

    times, sql_times = [], []
    for _ in range(runs):
        spent: list[float] = []
        with connection.execute_wrapper(_timed(spent)):
            started = time.perf_counter()
            client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        sql_times.append(sum(spent))
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "sql_median_ms": round(statistics.median(sql_times), 1),
        "queries": len(spent),
        "count_shown": shown,
        "status": 200,
    }


def _timed(spent: list[float]) -> Any:
    """An execute wrapper that adds each statement's milliseconds to ``spent``."""

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent.append((time.perf_counter() - started) * 1000)

    return wrapper


def sample_ids() -> tuple[str, str, str]:
    """A workspace, one of its files, and the newest file's day (for the drill-down)."""
    from pending_uploads.models import PendingUpload

    row = PendingUpload.objects.defer("content").order_by("-created_at").first()
    assert row is not None
    return str(row.workspace_id), str(row.file_id), row.created_at.strftime("%Y-%m-%d")


def main_pages(workspace: str, file_id: str, day: str) -> dict[str, dict[str, Any]]:
    year, month, mday = (int(part) for part in day.split("-"))
    return {
        "changelist": {},
        "page 100": {"p": 100},
        "filter state=pending": {"state": "pending"},
        "filter state=fetched": {"state": "fetched"},
        "filter state=acked": {"state": "acked"},
        "filter state=expired": {"state": "expired"},
        "filter mimetype=image": {"mimetype": "image"},
        "filter state=acked, page 100": {"state": "acked", "p": 100},
        "search workspace UUID": {"q": workspace},
        "search file UUID": {"q": file_id},
        "search word (common)": {"q": "report"},
        "search word (rare)": {"q": "4242"},
        "search word (absent)": {"q": "nosuchword"},
        "search workspace + word": {"q": f"{workspace} invoice"},
        "date year": {"created_at__year": year},
        "date month": {"created_at__year": year, "created_at__month": month},
        "date day": {"created_at__year": year, "created_at__month": month, "created_at__day": mday},
        "date day + state=acked": {
            "created_at__year": year,
            "created_at__month": month,
            "created_at__day": mday,
            "state": "acked",
        },
    }


def many_terms(count: int) -> str:
    return " ".join(f"term{n}" for n in range(count))


def logged_in_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def uuid_search_plan(workspace: str) -> list[str]:
    """Index names the UUID search's page query uses, from EXPLAIN."""
    from bench.empty import plan_nodes
    from pending_uploads.models import PendingUpload

    queryset = PendingUpload.objects.defer("content").matching_uuid(workspace)
    sql, params = queryset.order_by("-created_at", "-file_id")[:100].query.sql_with_params()
    return plan_nodes(sql, params)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.admin", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="table size for every page")
    parser.add_argument("--search-rows", type=int, default=200_000, help="table size, 500 terms")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page")
    parser.add_argument("--db-name", default="molecule_bench_admin")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[bench] %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    server = Server.start()
    db = BenchDatabases(server, args.db_name)
    results: dict[str, Any] = {}
    try:
        db.setup()
        db.fresh()
        django_setup(db.url)
        from django.db import connection

        results["search"] = {}
        for rows in sorted({args.search_rows, args.rows}):
            build(db, rows)
            connection.close()
            client = logged_in_client()
            workspace, file_id, day = sample_ids()
            # Terms that match nothing, so every variant renders the same empty page and the
            # figures compare the search alone. Before the bounded search, 50 terms took 4.5 s and
            # 500 over 30 s.
            searches = {
                "1 term": {"q": many_terms(1)},
                "3 terms": {"q": many_terms(3)},
                "50 terms": {"q": many_terms(50)},
                "500 terms": {"q": many_terms(500)},
                "a UUID + 500 terms": {"q": f"{workspace} {many_terms(500)}"},
                "501 UUIDs": {"q": " ".join([workspace] * 501)},
            }
            results["search"][rows] = {
                name: time_page(client, CHANGELIST, params, args.runs)
                for name, params in searches.items()
            }
            if rows != args.rows:
                continue
            results["rows"] = rows
            results["pages"] = {
                name: time_page(client, CHANGELIST, params, args.runs)
                for name, params in main_pages(workspace, file_id, day).items()
            }
            results["uuid_search_plan"] = uuid_search_plan(workspace)
            results["workspace_rows"] = rows // UPLOAD_WORKSPACES
            # Last, as it changes the table: the expired filter over one tied expires_at.
            tied = min(TIED_EXPIRED_ROWS, rows // 10)
            tie_expiry(db, tied)
            results["tied_expired_rows"] = tied
            for name, params in {
                f"filter state=expired, {tied:,} tied": {"state": "expired"},
                f"filter state=expired, {tied:,} tied, page 100": {"state": "expired", "p": 100},
            }.items():
                results["pages"][name] = time_page(client, CHANGELIST, params, args.runs)
    finally:
        close_django_connections()
        db.drop_all()
        server.stop()
    results["taken_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(format_results(results))
    print(f"\nresults written to {args.output}")
    return 0


def format_results(results: dict[str, Any]) -> str:
    lines = [
        f"admin pages at {results['rows']:,} rows (median of runs, ms; target {TARGET_MS:.0f})"
    ]
    for name, figure in results["pages"].items():
        if figure["median_ms"] is None:
            lines.append(f"  {name:<32}  answered {figure['status']}")
            continue
        flag = "" if figure["median_ms"] <= TARGET_MS else "  OVER"
        lines.append(
            f"  {name:<30} {figure['median_ms']:>7.1f} ({figure['min_ms']}-{figure['max_ms']})"
            f"  sql {figure['sql_median_ms']:>5.1f}  {figure['count_shown'] or ''}{flag}"
        )
    for rows, searches in results["search"].items():
        lines.append(f"search at {int(rows):,} rows (target {SEARCH_TARGET_MS:.0f} ms)")
        for name, figure in searches.items():
            lines.append(
                f"  {name:<32} {figure['median_ms']:>7.1f}  ({figure['min_ms']}-{figure['max_ms']})"
            )
    lines.append("UUID search plan: " + ", ".join(results["uuid_search_plan"]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
