"""The stored metrics and /metrics: metric_totals read per scrape, in both registry modes."""

from __future__ import annotations

import prometheus_client
import pytest
from django.db import OperationalError
from prometheus_client import multiprocess

from molecule.exposition import metrics_page, metrics_registry
from molecule.metrics import QUOTAS
from molecule.models import MetricTotal
from molecule.totals import bucket_label
from pending_uploads import metrics as upload_metrics
from tests.helpers import (
    Exposition,
    _child_env,
    assert_metric_delta,
    empty_totals_exposition,
    metric_series,
    metric_value,
    metrics_saved,
    run_module,
)


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in Exposition(text).collect()}


def test_every_declared_series_exists_before_anything_was_stored(db) -> None:
    found = families(empty_totals_exposition())

    for name in (
        "molecule_pending_uploads_swept",
        "molecule_phantom_busy_resets",
        "molecule_activity_logs_swept",
    ):
        assert found[name].type == "counter"
    assert {s.labels["state"]: s.value for s in found["molecule_pending_uploads_rows"].samples} == {
        "pending": 0.0,
        "fetched": 0.0,
        "acked": 0.0,
    }
    histogram = found["molecule_pending_uploads_sweep_duration_seconds"]
    assert histogram.type == "histogram"
    assert {s.name for s in histogram.samples} >= {
        "molecule_pending_uploads_sweep_duration_seconds_bucket",
        "molecule_pending_uploads_sweep_duration_seconds_count",
        "molecule_pending_uploads_sweep_duration_seconds_sum",
    }


def test_additions_accumulate_and_observations_fill_cumulative_buckets(db) -> None:
    name = upload_metrics.uploads_swept.name
    duration = upload_metrics.sweep_duration.name
    before = metrics_saved()

    MetricTotal.objects.add(name, 2, label="error")
    MetricTotal.objects.add(name, 3, label="error")
    MetricTotal.objects.observe(duration, upload_metrics.SWEEP_DURATION_BUCKETS, 0.3)

    assert_metric_delta(before, 5, f"{name}_total", outcome="error")
    assert_metric_delta(before, 1, f"{duration}_count")
    # Cumulative: 0.3 counts in every bucket from le=0.5 up, and in none below.
    assert_metric_delta(before, 0, f"{duration}_bucket", le=bucket_label(0.25))
    assert_metric_delta(before, 1, f"{duration}_bucket", le=bucket_label(0.5))
    assert_metric_delta(before, 1, f"{duration}_bucket", le="+Inf")


def test_a_stored_label_outside_the_declared_ones_is_still_exported(db) -> None:
    MetricTotal.objects.add(upload_metrics.uploads_swept.name, label="legacy")

    assert metric_value("molecule_pending_uploads_swept_total", outcome="legacy") == 1


def test_an_unreadable_table_drops_the_stored_families_not_the_page(
    db, monkeypatch, caplog
) -> None:
    def broken(*args: object) -> None:
        raise OperationalError("database is away")

    monkeypatch.setattr(MetricTotal.objects, "snapshot", broken)

    body, content_type = metrics_page()

    assert content_type.startswith("text/plain")
    assert "molecule_pending_uploads_swept_total" not in body.decode()
    assert "python_info" in body.decode()
    assert "could not read metric_totals for /metrics" in caplog.text


# Only the upper-case name: prometheus_client copies the deprecated lower-case one into it.
@pytest.mark.parametrize("variable", ["PROMETHEUS_MULTIPROC_DIR"])
def test_multiprocess_mode_serves_the_stored_families_beside_the_files(
    db, monkeypatch, tmp_path, variable: str
) -> None:
    monkeypatch.setenv(variable, str(tmp_path))
    before = metrics_saved()
    MetricTotal.objects.add("molecule_phantom_busy_resets", 4)

    registry = metrics_registry()

    assert_metric_delta(before, 4, "molecule_phantom_busy_resets_total")
    # Only the files' metrics and the stored ones: no process-local default registry.
    assert "python_info" not in {family.name for family in registry.collect()}
    monkeypatch.delenv(variable)
    assert "python_info" in {family.name for family in metrics_registry().collect()}


def test_a_fresh_web_process_exports_its_own_counters_at_zero(tmp_path) -> None:
    # What a gunicorn worker writes before its first request: loading molecule.wsgi runs the
    # apps' ready(), which creates every series, so the alerts that sum them across targets
    # see 0 from the first scrape rather than nothing.
    env = _child_env(None) | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = run_module("molecule.wsgi", env=env)
    assert result.returncode == 0, result.stderr
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    text = prometheus_client.generate_latest(registry).decode()

    assert metric_series("molecule_quota_refusals_total", exposition=text) == {
        (("quota", quota),): 0.0 for quota in QUOTAS
    }
    assert metric_series("molecule_db_client_timeouts_total", exposition=text) == {(): 0.0}
