"""Helpers for tests whose rows must be committed: real processes and killed connections."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from prometheus_client.mmap_dict import MmapedDict

from devtools.processes import ServiceStack
from tests.helpers import run_sql


class UploadKind(NamedTuple):
    """A class of pending_uploads rows, tagged by filename prefix so tests can count each."""

    name: str
    acked_ago: timedelta | None
    expires_in: timedelta
    eligible: bool


# Far from the default one-hour retention and from now(), so no clock skew can flip a row.
# Rows of one insert are a millisecond apart (see INSERT_UPLOADS_SQL), as batches see in life.
ACKED_OLD = UploadKind("ackedold", timedelta(days=2), timedelta(days=1), eligible=True)
EXPIRED = UploadKind("expired", None, -timedelta(hours=1), eligible=True)
ACKED_RECENT = UploadKind("ackedrecent", timedelta(minutes=1), timedelta(days=1), eligible=False)
LIVE = UploadKind("live", None, timedelta(days=1), eligible=False)

INSERT_UPLOADS_SQL = """
INSERT INTO pending_uploads
       (workspace_id, content, size_bytes, filename, mimetype, created_at, acked_at, expires_at)
SELECT %(workspace_id)s, '\\x2a'::bytea, 1, %(kind)s || '-' || g, 'text/plain',
       now() - interval '3 days',
       now() - %(acked_ago)s::interval - g * interval '1 millisecond',
       now() + %(expires_in)s - g * interval '1 millisecond'
  FROM generate_series(1, %(count)s) AS g
"""

# Every table these tests commit rows to; the test database is thrown away, but later tests
# in the same run expect these tables empty.
TOUCHED_TABLES = (
    "pending_uploads",
    "activity_logs",
    "workspaces",
    "workspace_usage",
    "django_q_ormq",
    "django_q_task",
)


def uploads_insert(kind: UploadKind, count: int, workspace_id: uuid.UUID | None = None) -> None:
    run_sql(
        INSERT_UPLOADS_SQL,
        {
            "workspace_id": workspace_id or uuid.uuid4(),
            "kind": kind.name,
            "acked_ago": kind.acked_ago,
            "expires_in": kind.expires_in,
            "count": count,
        },
    )


def uploads_count_by_kind() -> dict[str, int]:
    rows = run_sql("SELECT split_part(filename, '-', 1), count(*) FROM pending_uploads GROUP BY 1")
    return {kind.name: 0 for kind in (ACKED_OLD, EXPIRED, ACKED_RECENT, LIVE)} | dict(rows)


def tables_truncate() -> None:
    run_sql(f"TRUNCATE {', '.join(TOUCHED_TABLES)} CASCADE")


T = TypeVar("T")


def web_requests_served(metrics_dir: Path, pid: int) -> float:
    """Requests one gunicorn worker has served, read from its own multiprocess counter file."""
    path = metrics_dir / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    return sum(
        value
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
        if json.loads(key)[1] == "django_http_requests_before_middlewares_total"
    )


def on_every_web_worker(
    stack: ServiceStack, call: Callable[[], T], count: int = 10, *, most: int = 200
) -> list[T]:
    """Make ``count`` concurrent calls, and more until every gunicorn worker answered some.

    A sync worker that has just answered accepts the next queued connection before an idle
    one wakes up, so fast requests can all land on one worker; hence the extra rounds.
    """
    workers = stack.pids()["gunicorn_workers"]
    assert len(workers) == stack.web_workers, stack.log_tail()
    before = {pid: web_requests_served(stack.metrics_dir, pid) for pid in workers}
    results: list[T] = []
    with ThreadPoolExecutor(max_workers=2 * len(workers) + 1) as pool:
        while True:
            results.extend(pool.map(lambda _: call(), range(count)))
            answered = {
                pid: web_requests_served(stack.metrics_dir, pid) - before[pid] for pid in workers
            }
            if all(answered.values()) or len(results) >= most:
                break
    assert all(answered.values()), f"a gunicorn worker answered none of {len(results)}: {answered}"
    return results


# A bound on a hang, never a target: a process that should stop, or a wait that should end,
# gets this long, so a loaded 2-core machine cannot trip it. No test asserts how fast
# something happened; speeds are measured in bench/.
HANG_TIMEOUT = 60.0


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str | Callable[[], str] = "",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``.

    ``what`` names the wait in the failure; a callable is asked only then (for log tails).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {described or condition}")
        time.sleep(interval)
