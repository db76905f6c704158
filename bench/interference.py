"""Ack latency while a sweep deletes ~100k rows, against the same acks with no sweep running."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from bench.config import SWEEP_BATCH_SIZE, Scale
from bench.database import BenchDatabases
from bench.stats import percentile, ratio, summary
from bench.sweeps import run_ours, upload_dataset

logger = logging.getLogger("bench")

# Live, unacked rows in file_id order, which is random order on disk.
LIVE_IDS_SQL = """
SELECT workspace_id, file_id FROM pending_uploads
 WHERE acked_at IS NULL AND expires_at > now() + interval '1 hour'
 ORDER BY file_id LIMIT %s
"""
# Enough ids that the acker cannot run dry before the sweep ends.
SWEEP_ACK_IDS = 40_000


class Acker(threading.Thread):
    """Acks rows back to back through PendingUpload.objects.ack on its own connection."""

    def __init__(self, ids: list[tuple[uuid.UUID, uuid.UUID]], limit: int | None = None) -> None:
        super().__init__(daemon=True)
        self.ids = ids
        self.limit = limit
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []  # (start, latency ms)
        self.failed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import connection

        from pending_uploads.managers import AckOutcome
        from pending_uploads.models import PendingUpload

        try:
            connection.ensure_connection()
            for number, (workspace_id, file_id) in enumerate(self.ids):
                if self.stop.is_set() or (self.limit is not None and number >= self.limit):
                    break
                started = time.perf_counter()
                acked = PendingUpload.objects.ack(workspace_id, file_id) is AckOutcome.ACKED
                self.samples.append((started, (time.perf_counter() - started) * 1000))
                self.failed += not acked
        except BaseException as exc:  # reported by the caller
            self.error = exc
        finally:
            connection.close()

    def finish(self) -> None:
        self.stop.set()
        self.join()
        if self.error is not None:
            raise RuntimeError(f"acker failed: {self.error!r}") from self.error


def latency(values: list[float]) -> dict[str, Any]:
    return {
        "acks": len(values),
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values, default=None),
    }


def one_rep(
    db: BenchDatabases, dataset: str, baseline_acks: int, batch_size: int
) -> dict[str, Any]:
    db.restore(dataset)
    with db.connect() as conn:
        ids = conn.execute(LIVE_IDS_SQL, [baseline_acks + SWEEP_ACK_IDS]).fetchall()
    baseline_ids, sweep_ids = ids[:baseline_acks], ids[baseline_acks:]
    quiet = Acker(baseline_ids, baseline_acks)
    quiet.start()
    quiet.join()
    quiet.finish()
    busy = Acker(sweep_ids)
    busy.start()
    # Let the acker connect and settle before the sweep starts.
    while len(busy.samples) < 20 and busy.is_alive():
        time.sleep(0.005)
    started = time.perf_counter()
    sweep = run_ours(batch_size)
    ended = time.perf_counter()
    busy.finish()
    during = [ms for start, ms in busy.samples if started <= start <= ended]
    return {
        "baseline": latency([ms for _, ms in quiet.samples]),
        "during_sweep": latency(during),
        "ack_ids_exhausted": len(busy.samples) >= len(sweep_ids),
        "acks_not_applied": quiet.failed + busy.failed,
        "sweep": sweep,
        "baseline_samples": [ms for _, ms in quiet.samples],
        "sweep_samples": during,
    }


def measure(db: BenchDatabases, scale: Scale, batch_size: int) -> dict[str, Any]:
    dataset = upload_dataset(db, scale.main_rows)
    reps = []
    for _ in range(scale.interference_reps):
        rep = one_rep(db, dataset, scale.baseline_acks, batch_size)
        logger.info(
            "interference, batch size %d: baseline %s, during sweep %s, sweep %.2f s",
            batch_size,
            rep["baseline"],
            rep["during_sweep"],
            rep["sweep"]["seconds"],
        )
        reps.append(rep)

    def across(part: str, key: str) -> dict[str, Any]:
        return summary([rep[part][key] for rep in reps if rep[part][key] is not None], 3)

    baseline_p99 = across("baseline", "p99_ms")
    during_p99 = across("during_sweep", "p99_ms")
    pooled_quiet = [ms for rep in reps for ms in rep["baseline_samples"]]
    pooled_busy = [ms for rep in reps for ms in rep["sweep_samples"]]
    return {
        "rows": scale.main_rows,
        "batch_size": batch_size,
        "sweep_rows_deleted": reps[0]["sweep"]["rows"],
        "sweep_seconds": summary([rep["sweep"]["seconds"] for rep in reps], 4),
        "longest_statement_ms": summary([rep["sweep"]["longest_statement_ms"] for rep in reps], 1),
        "baseline_p50_ms": across("baseline", "p50_ms"),
        "baseline_p99_ms": baseline_p99,
        "during_sweep_p50_ms": across("during_sweep", "p50_ms"),
        "during_sweep_p99_ms": during_p99,
        "acks_baseline": sum(rep["baseline"]["acks"] for rep in reps),
        "acks_during_sweep": sum(rep["during_sweep"]["acks"] for rep in reps),
        "ack_ids_exhausted": any(rep["ack_ids_exhausted"] for rep in reps),
        "acks_not_applied": sum(rep["acks_not_applied"] for rep in reps),
        # p99 during the sweep : p99 without (the target is <= 2).
        "p99_ratio": ratio(during_p99["median"], baseline_p99["median"]),
        "pooled": {
            "baseline": latency(pooled_quiet),
            "during_sweep": latency(pooled_busy),
            "baseline_p90_ms": percentile(pooled_quiet, 90),
            "during_sweep_p90_ms": percentile(pooled_busy, 90),
        },
    }


def bench_interference(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    """At the default batch size (the figure), then at the smallest one tried in 'sweep'."""
    figure = measure(db, scale, SWEEP_BATCH_SIZE)
    figure["smaller_batches"] = measure(db, scale, min(scale.batch_sizes))
    return {"interference": figure}
