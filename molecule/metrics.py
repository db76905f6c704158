"""Metrics whose values live in the metric_totals table, the collector that serves them, and
the web processes' own counters.

Counters and gauges written by sweeps are kept in PostgreSQL, not in process memory: a sweep
adds to its counter in the same statement as its DELETE, so the totals are exact whichever
process did the work (qcluster, cron, the admin), survive restarts and leave no per-process
files. Every /metrics target exports the same global value; aggregate with max, not sum.

Events of the request path (a quota refusal, a connection the deadline cut) are counted by the
web process itself, in prometheus_client's multiprocess files like the request metrics: storing
them would add a write to the hottest row of metric_totals on every refused request, which is
what an abuser controls, and a cut connection has no database to store it in. These are per
target: aggregate with sum.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import DatabaseError
from prometheus_client import Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from molecule.errors import first_line
from molecule.models import MetricTotal
from molecule.totals import bucket_label

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredMetric:
    """One exported family; ``name`` is the key in metric_totals (a counter without _total)."""

    name: str
    documentation: str
    kind: str  # "counter", "gauge" or "histogram"
    label: str | None = None
    # Declared label values are exported at 0 until a row exists, so each series is there
    # from the first scrape.
    label_values: tuple[str, ...] = ()
    buckets: tuple[float, ...] = field(default=())

    def family(self, stored: dict[tuple[str, str], float]) -> Metric:
        if self.kind == "histogram":
            family = HistogramMetricFamily(self.name, self.documentation)
            bounds = [*self.buckets, float("inf")]
            family.add_metric(
                [],
                [(bucket_label(b), stored.get((self.name, bucket_label(b)), 0.0)) for b in bounds],
                stored.get((f"{self.name}_sum", ""), 0.0),
            )
            return family
        maker = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        labels = [self.label] if self.label else []
        family = maker(self.name, self.documentation, labels=labels)
        values = self.label_values if self.label else ("",)
        seen = {label for metric, label in stored if metric == self.name}
        for value in (*values, *sorted(seen - set(values))):
            family.add_metric([value] if self.label else [], stored.get((self.name, value), 0.0))
        return family


REGISTERED: list[StoredMetric] = []


def stored_metric(*args: object, **kwargs: object) -> StoredMetric:
    """Declare a database-backed metric; the collector exports every declared one."""
    metric = StoredMetric(*args, **kwargs)  # type: ignore[arg-type]
    REGISTERED.append(metric)
    return metric


class StoredMetricsCollector(Collector):
    """Reads metric_totals once per scrape (one small SELECT) and yields every family."""

    def collect(self) -> Iterator[Metric]:
        try:
            stored = MetricTotal.objects.snapshot()
        except DatabaseError as exc:
            # The request metrics are still worth serving when the database is away; the
            # stored families go missing, which absent() alerts catch. One line, no traceback:
            # every scrape would repeat it.
            logger.error("could not read metric_totals for /metrics: %s", first_line(exc))
            return
        for metric in REGISTERED:
            yield metric.family(stored)


ACTIVITY_SWEEP_OUTCOMES = ("deleted", "error")

activity_logs_swept = stored_metric(
    "molecule_activity_logs_swept",
    "activity_logs rows deleted by the retention sweep (deleted: acknowledged and older than "
    "ACTIVITY_SOFT_RETENTION, or older than ACTIVITY_RETENTION; error counts failed sweep "
    "runs). A rising error rate means the table grows unbounded. "
    "Stored in the database: every target exports the same total, aggregate with max.",
    "counter",
    label="outcome",
    label_values=ACTIVITY_SWEEP_OUTCOMES,
)

activity_last_sweep_timestamp = stored_metric(
    "molecule_activity_logs_last_sweep_timestamp_seconds",
    "Unix time of the last successful activity retention sweep by any process, 0 if none ever "
    "succeeded; falling hours behind means the sweep is not running.",
    "gauge",
)


WORKSPACE_PRUNE_OUTCOMES = ("pruned", "error")

workspaces_pruned = stored_metric(
    "molecule_workspaces_pruned",
    "Workspaces deleted by the prune (pruned: registered, then silent for WORKSPACE_PRUNE_AFTER "
    "with no activity and no pending uploads; error counts failed prune runs). A burst of "
    "pruned means many registrations never came back, as a registration flood leaves. "
    "Stored in the database: every target exports the same total, aggregate with max.",
    "counter",
    label="outcome",
    label_values=WORKSPACE_PRUNE_OUTCOMES,
)

# --- Counted by the web processes (multiprocess files, like the request metrics). ---------

db_client_timeouts = Counter(
    "molecule_db_client_timeouts_total",
    "Database connections cut because an operation waited longer than DB_CLIENT_TIMEOUT for "
    "PostgreSQL; any rise means the database froze or the network to it dropped packets. "
    "Counted per web process: aggregate with sum.",
)

QUOTAS = ("pending_bytes", "activity_bytes", "uploads")

quota_refusals = Counter(
    "molecule_quota_refusals_total",
    "Requests refused with 429 because a workspace reached a quota (pending_bytes: uploads "
    "stored; activity_bytes, uploads: per QUOTA_WINDOW). A rise means a workspace writes far "
    "more than agents do: abuse, or a runaway agent. Counted per web process: aggregate with sum.",
    ["quota"],
)
for _quota in QUOTAS:
    quota_refusals.labels(_quota)
