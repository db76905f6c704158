"""Bytes in a bucket (moto, or AWS_ENDPOINT_URL_S3's server): the sweep with its object deletes
against the unbounded CTE over the same rows with their bytes inline, and one worker's memory
for a large upload and fetch through the bucket."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

from bench import datasets
from bench.config import SWEEP_BATCH_BYTES, SWEEP_BATCH_SIZE, Scale
from bench.database import BenchDatabases
from bench.memory import MIB, one_rep, size_point
from bench.stats import Stopwatch, ratio, summary
from bench.sweeps import (
    FIRST_BATCH_PARAMS,
    RETENTION_PARAMS,
    UNBOUNDED_SWEEP_SQL,
    aggregate,
    eligible_counts,
    run_ours,
    run_unbounded,
    statement_io,
    upload_dataset,
)
from devtools.processes import S3Server

logger = logging.getLogger("bench")

# The keys the sweep will delete: the rows its preview counts.
ELIGIBLE_KEYS_SQL = """
SELECT storage_key FROM pending_uploads
 WHERE (acked_at IS NOT NULL AND acked_at <= now() - make_interval(secs => %(retention_seconds)s))
    OR (acked_at IS NULL AND expires_at <= now())
"""
WAL_LSN_SQL = "SELECT pg_current_wal_lsn()"
WAL_SINCE_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint"
# Objects put side by side; moto and real stores both take many small PUTs at once.
PUT_THREADS = 8
# moto takes about 180 PUTs/s on this kind of machine, so 100,000 objects per repetition would
# take 9 minutes. Its DeleteObjects costs the same per key whether the key exists or not
# (measured 12,400 and 10,900 keys/s), so above Scale.bucket_objects eligible rows the bench
# puts an even sample of their objects; every key still goes through the outbox and
# DeleteObjects, and the sample shows that what exists is deleted. The figures say how many
# were put.


@contextlib.contextmanager
def s3_environment() -> Iterator[S3Server]:
    """An S3 server, and boto3's environment (here and in the children) pointing at it."""
    with S3Server() as server, mock.patch.dict(os.environ, server.env):
        from pending_uploads.storage import s3

        # A client made before the environment changed would talk to the wrong server.
        s3._clients.clear()
        yield server
    from pending_uploads.storage import s3

    s3._clients.clear()


@contextlib.contextmanager
def bucket(name: str) -> Iterator[str]:
    """A new bucket, set as PENDING_UPLOADS_S3_BUCKET; emptied and removed afterwards."""
    from django.test import override_settings

    from pending_uploads.storage.s3 import client

    s3 = client()
    s3.create_bucket(Bucket=name)
    try:
        with override_settings(PENDING_UPLOADS_S3_BUCKET=name):
            yield name
    finally:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=name)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)


def keyed_dataset(db: BenchDatabases, rows: int) -> str:
    return db.built(
        f"keyed_{rows}",
        f"{rows} rows, bytes in a bucket",
        lambda conn: datasets.fill_keyed_uploads(conn, rows),
    )


def put_eligible_objects(db: BenchDatabases, name: str, most: int) -> int:
    """A 1 KiB object per row the sweep will delete, or an even sample of at most ``most`` of
    them; the other rows' objects are never touched, so none are put."""
    from pending_uploads.storage.s3 import client

    with db.connect() as conn:
        keys = [key for (key,) in conn.execute(ELIGIBLE_KEYS_SQL, RETENTION_PARAMS)]
    keys = keys[:: -(-len(keys) // most)] if keys else keys
    s3 = client()
    body = b"\x2a" * 1024
    with ThreadPoolExecutor(PUT_THREADS) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=name, Key=key, Body=body), keys))
    return len(keys)


def wal_since(db: BenchDatabases, lsn: str) -> int:
    with db.connect() as conn:
        return conn.execute(WAL_SINCE_SQL, [lsn]).fetchone()[0]


def wal_now(db: BenchDatabases) -> str:
    with db.connect() as conn:
        return str(conn.execute(WAL_LSN_SQL).fetchone()[0])


def run_bucket_rep(db: BenchDatabases, dataset: str, rep: int, most: int) -> dict[str, Any]:
    """The service's sweep on the bucket rows: its SQL batches, then the outbox drain."""
    from pending_uploads.services import uploads_objects_drain
    from pending_uploads.storage.s3 import client

    db.restore(dataset)
    with bucket(f"bench-sweep-{rep}-{uuid.uuid4().hex[:8]}") as name:
        objects = put_eligible_objects(db, name, most)
        lsn = wal_now(db)
        sql = run_ours()
        sql["wal_bytes"] = wal_since(db, lsn)
        clock = Stopwatch()
        drained = uploads_objects_drain()
        drain_seconds = clock.seconds
        left = client().list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount", 0)
    return {
        "sql": sql,
        "objects": objects,
        "drain": {"seconds": drain_seconds, "deleted": drained.deleted, "failed": drained.failed},
        "objects_left": left,
    }


def run_inline_rep(db: BenchDatabases, dataset: str) -> dict[str, Any]:
    db.restore(dataset)
    lsn = wal_now(db)
    run = run_unbounded(db)
    run["wal_bytes"] = wal_since(db, lsn)
    return run


def bench_bucket_sweep(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    """Ours with the bytes in a bucket (SQL part, drain, both) against the seed's unbounded CTE
    with the same rows' bytes inline, alternating, each on a fresh copy."""
    rows = scale.main_rows
    inline = upload_dataset(db, rows)
    keyed = keyed_dataset(db, rows)
    db.restore(keyed)
    counts = eligible_counts(db)
    bucket_runs: list[dict[str, Any]] = []
    inline_runs: list[dict[str, Any]] = []
    with s3_environment():
        for rep in range(scale.sweep_reps):
            order = ("bucket", "inline") if rep % 2 == 0 else ("inline", "bucket")
            for variant in order:
                if variant == "bucket":
                    bucket_runs.append(run_bucket_rep(db, keyed, rep, scale.bucket_objects))
                    logger.info("bucket sweep: %s", json.dumps(bucket_runs[-1]))
                else:
                    inline_runs.append(run_inline_rep(db, inline))
                    logger.info("unbounded inline: %s", json.dumps(inline_runs[-1]))
    from pending_uploads.managers import SWEEP_BATCH_SQL

    figure = bucket_figure(counts, bucket_runs, inline_runs)
    # Per statement, from EXPLAIN: exact even when other databases share the server's WAL.
    figure["statement_io"] = {
        "ours_first_batch": statement_io(db, keyed, SWEEP_BATCH_SQL, FIRST_BATCH_PARAMS),
        "unbounded_inline": statement_io(db, inline, UNBOUNDED_SWEEP_SQL, RETENTION_PARAMS),
    }
    return {"bucket_sweep": figure}


def bucket_figure(
    counts: dict[str, int], bucket_runs: list[dict[str, Any]], inline_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    sql = [run["sql"] for run in bucket_runs]
    totals = [run["sql"]["seconds"] + run["drain"]["seconds"] for run in bucket_runs]
    deleted = [run["sql"]["rows"] for run in bucket_runs]
    figure = {
        **counts,
        "batch_size": SWEEP_BATCH_SIZE,
        "batch_bytes": SWEEP_BATCH_BYTES,
        "sql": aggregate(sql),
        "drain": {
            "seconds": summary([run["drain"]["seconds"] for run in bucket_runs], 4),
            "objects_per_s": summary(
                [run["drain"]["deleted"] / run["drain"]["seconds"] for run in bucket_runs], 0
            ),
            "objects_deleted": max((run["drain"]["deleted"] for run in bucket_runs), default=0),
            "objects_put": max((run["objects"] for run in bucket_runs), default=0),
            "failed": max((run["drain"]["failed"] for run in bucket_runs), default=0),
            "objects_left": max((run["objects_left"] for run in bucket_runs), default=0),
        },
        "total": {
            "seconds": summary(totals, 4),
            "rows_per_s": summary([n / s for n, s in zip(deleted, totals, strict=True)], 0),
        },
        "unbounded_inline": aggregate(inline_runs),
        "wal_bytes_per_row": {
            "sql": summary([run["wal_bytes"] / max(run["rows"], 1) for run in sql], 0),
            "unbounded_inline": summary(
                [run["wal_bytes"] / max(run["rows"], 1) for run in inline_runs], 0
            ),
        },
    }
    unbounded = figure["unbounded_inline"]["rows_per_s"]["median"]
    # Throughput ratios against the unbounded CTE on inline bytes (goal >= 1.0 for the total).
    figure["throughput_ratio"] = ratio(figure["total"]["rows_per_s"]["median"], unbounded)
    figure["sql_throughput_ratio"] = ratio(figure["sql"]["rows_per_s"]["median"], unbounded)
    return figure


def bench_bucket_memory(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    """One fresh worker's peak RSS for the largest memory size, uploaded to and served from a
    bucket (one part in memory at a time going up, one chunk coming down)."""
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-bucket-mem."))
    size = scale.memory_sizes[-1]
    reps = []
    try:
        with s3_environment(), bucket(f"bench-memory-{uuid.uuid4().hex[:8]}") as name:
            for _ in range(scale.memory_reps):
                reps.append(one_rep(db, size, scratch, {"PENDING_UPLOADS_S3_BUCKET": name}))
                logger.info("bucket memory %d MiB: %s", size // MIB, reps[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"bucket_memory": {**size_point(size, reps), "web_workers": 1}}
