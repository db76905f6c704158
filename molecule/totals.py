"""Queries on metric_totals: the database-backed counters and gauges that /metrics exports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import connections, models, router

# The fragment every counting statement ends with. A sweep statement joins it as a
# data-modifying CTE, so the rows it deletes and the count it adds commit (or roll back)
# together: a crash between the two cannot lose a count. Rows are created on first use.
ADD_TO_TOTALS = """
INSERT INTO metric_totals AS t (metric, label, value, updated_at)
SELECT metric, label, n, now() FROM increments WHERE n > 0
    ON CONFLICT (metric, label)
    DO UPDATE SET value = t.value + EXCLUDED.value, updated_at = EXCLUDED.updated_at
"""

# Raw for the upsert: one round trip, and concurrent writers add rather than overwrite.
TOTAL_ADD_SQL = f"""
WITH increments (metric, label, n) AS (
    VALUES (%(metric)s::text, %(label)s::text, %(amount)s::double precision)
), added AS ({ADD_TO_TOTALS})
SELECT 1
"""

# Gauges: every label of one metric set in one statement; now_labels take the database
# clock (Unix seconds) instead of a value, so a timestamp agrees with the sweep's own clock.
GAUGES_SET_SQL = """
INSERT INTO metric_totals AS t (metric, label, value, updated_at)
SELECT g.metric, g.label, coalesce(g.value, EXTRACT(EPOCH FROM now())), now()
  FROM unnest(%(metrics)s::text[], %(labels)s::text[], %(values)s::double precision[])
       AS g (metric, label, value)
    ON CONFLICT (metric, label)
    DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
"""

# A histogram observation: +1 on every cumulative bucket the value falls into, and the sum.
HISTOGRAM_OBSERVE_SQL = f"""
WITH increments (metric, label, n) AS (
    SELECT %(metric)s::text, le, 1::double precision
      FROM unnest(%(bounds)s::text[], %(uppers)s::double precision[]) AS b (le, upper)
     WHERE %(value)s::double precision <= b.upper
    UNION ALL
    SELECT %(metric)s::text || '_sum', '', %(value)s::double precision
), added AS ({ADD_TO_TOTALS})
SELECT 1
"""  # noqa: S608 - composed of constants; every value is a bound parameter

SNAPSHOT_SQL = "SELECT metric, label, value FROM metric_totals"


class MetricTotalManager(models.Manager):
    def _cursor(self):
        return connections[router.db_for_write(self.model)].cursor()

    def snapshot(self) -> dict[tuple[str, str], float]:
        """Every stored value by (metric, label)."""
        with self._cursor() as cursor:
            cursor.execute(SNAPSHOT_SQL)
            return {(metric, label): value for metric, label, value in cursor.fetchall()}

    def add(self, metric: str, amount: float = 1, *, label: str = "") -> None:
        """Add to a counter in its own statement (failures, which have no batch to join)."""
        with self._cursor() as cursor:
            cursor.execute(TOTAL_ADD_SQL, {"metric": metric, "label": label, "amount": amount})

    def gauges_set(self, values: Mapping[tuple[str, str], float | None]) -> None:
        """Set gauges by (metric, label); a None value stores the database's now()."""
        items = list(values.items())
        with self._cursor() as cursor:
            cursor.execute(
                GAUGES_SET_SQL,
                {
                    "metrics": [metric for (metric, _), _ in items],
                    "labels": [label for (_, label), _ in items],
                    # psycopg refuses a list that mixes ints and floats.
                    "values": [None if value is None else float(value) for _, value in items],
                },
            )

    def observe(self, metric: str, buckets: Sequence[float], value: float) -> None:
        """Record one observation of a histogram with these upper bounds (+Inf implied)."""
        bounds = [*(float(bound) for bound in buckets), float("inf")]
        with self._cursor() as cursor:
            cursor.execute(
                HISTOGRAM_OBSERVE_SQL,
                {
                    "metric": metric,
                    "bounds": [bucket_label(bound) for bound in bounds],
                    "uppers": bounds,
                    "value": float(value),
                },
            )


def bucket_label(bound: float) -> str:
    """The ``le`` label value prometheus_client would print for this bound."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(bound)
