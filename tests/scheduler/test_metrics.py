"""The phantom-busy series at /metrics: always present, zero before any sweep, race-free."""

from __future__ import annotations

from datetime import timedelta

import pytest

from molecule.models import MetricTotal
from scheduler import metrics
from scheduler.services import workspaces_reset_phantom_busy
from tests.helpers import (
    assert_metric_delta,
    empty_totals_exposition,
    metric_series,
    metric_value,
    metrics_saved,
    run_together,
    scrape,
)

RESETS = "molecule_phantom_busy_resets_total"
ERRORS = "molecule_phantom_busy_sweep_errors_total"


def test_metrics_page_shows_help_type_and_value_lines(api, db) -> None:
    text = scrape(api)

    lines = text.splitlines()
    for name in ("molecule_phantom_busy_resets", "molecule_phantom_busy_sweep_errors"):
        help_line = next(line for line in lines if line.startswith(f"# HELP {name}_total "))
        # The help says what a rise means, not just the metric's name.
        assert len(help_line) > 80
        assert f"# TYPE {name}_total counter" in lines
    for name in (RESETS, ERRORS):
        # One unlabelled series, and the page shows what the registry holds.
        assert metric_series(name, exposition=text) == {(): metric_value(name)}
    assert "# TYPE molecule_workspaces_active gauge" in lines


def test_never_swept_database_shows_the_counters_at_zero(db) -> None:
    text = empty_totals_exposition()

    assert f"# HELP {RESETS} " in text
    assert f"# TYPE {RESETS} counter" in text
    assert f"{RESETS} 0.0" in text.splitlines()
    assert metric_series(RESETS, exposition=text) == {(): 0.0}
    assert f"# TYPE {ERRORS} counter" in text
    assert metric_series(ERRORS, exposition=text) == {(): 0.0}


@pytest.mark.django_db
def test_metrics_page_shows_resets_of_a_sweep(api, register) -> None:
    register("phantom", active_tasks=4)
    before = metrics_saved(scrape(api))

    workspaces_reset_phantom_busy(stale_after=timedelta(minutes=10))

    text = scrape(api)
    assert_metric_delta(before, 1, RESETS, exposition=text)
    assert metric_value("molecule_workspaces_active", exposition=text) == 1


def test_concurrent_increments_are_not_lost(transactional_db) -> None:
    threads_count, increments = 8, 25
    before = metrics_saved()

    def hammer() -> None:
        for _ in range(increments):
            MetricTotal.objects.add(metrics.phantom_busy_resets.name)

    run_together(hammer, threads_count)

    assert_metric_delta(before, threads_count * increments, RESETS)
