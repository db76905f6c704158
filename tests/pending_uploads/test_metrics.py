"""The sweeper's series at /metrics: HELP/TYPE lines, zero in a fresh process, live values."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.contrib.postgres.functions import TransactionNow

from pending_uploads.managers import NewUpload
from pending_uploads.metrics import FORWARD_OUTCOMES
from pending_uploads.models import PendingUpload
from pending_uploads.services import uploads_sweep
from tests.helpers import (
    assert_metric_deltas,
    empty_totals_exposition,
    metric_series,
    metrics_saved,
    scrape,
)

SWEPT = "molecule_pending_uploads_swept_total"
OUTCOMES = ("acked", "expired", "error")


def test_metrics_page_shows_help_type_and_every_outcome(api, db) -> None:
    text = scrape(api)

    lines = text.splitlines()
    assert any(line.startswith(f"# HELP {SWEPT} ") for line in lines)
    assert f"# TYPE {SWEPT} counter" in lines
    series = metric_series(SWEPT, exposition=text)
    assert set(series) == {(("outcome", outcome),) for outcome in OUTCOMES}


def test_metrics_page_shows_the_backlog_gauges_and_duration_histogram(api, db) -> None:
    text = scrape(api)

    for name in (
        "molecule_pending_uploads_rows",
        "molecule_pending_uploads_oldest_unacked_age_seconds",
        "molecule_pending_uploads_last_sweep_timestamp_seconds",
    ):
        assert f"# TYPE {name} gauge" in text
    assert "# TYPE molecule_pending_uploads_sweep_duration_seconds histogram" in text


def test_never_swept_database_shows_every_swept_series_at_zero(db) -> None:
    text = empty_totals_exposition()

    assert f"# HELP {SWEPT} " in text
    assert f"# TYPE {SWEPT} counter" in text
    series = metric_series(SWEPT, exposition=text)
    assert series == {(("outcome", outcome),): 0.0 for outcome in OUTCOMES}
    # The bucket's series exist from the first scrape too, in either storage mode.
    for name, kind in (
        ("molecule_pending_uploads_objects_deleted_total", "counter"),
        ("molecule_pending_uploads_object_delete_errors_total", "counter"),
        ("molecule_pending_uploads_object_deletions_pending", "gauge"),
    ):
        assert f"# TYPE {name} {kind}" in text
        assert metric_series(name, exposition=text) == {(): 0.0}


@pytest.mark.django_db
def test_metrics_page_shows_what_a_sweep_counted(api) -> None:
    workspace_id = uuid.uuid4()
    for age in (timedelta(hours=2), timedelta(hours=5)):
        upload = NewUpload("f.txt", "text/plain", 1, io.BytesIO(b"x"))
        row = PendingUpload.objects.put(workspace_id, upload, ttl=timedelta(hours=1), max_bytes=8)
        PendingUpload.objects.filter(pk=row.pk).update(acked_at=TransactionNow() - age)
    page_before = metrics_saved(scrape(api))
    before = metrics_saved()

    uploads_sweep(ack_retention=timedelta(hours=1))

    counted = {"acked": 2, "expired": 0, "error": 0}
    assert_metric_deltas(page_before, SWEPT, "outcome", counted, exposition=scrape(api))
    # The page and the registry agree.
    assert_metric_deltas(before, SWEPT, "outcome", counted)


def test_metrics_page_shows_every_forward_outcome_and_the_duration_histogram(api, db) -> None:
    text = scrape(api)

    assert "# TYPE molecule_chat_upload_forwards_total counter" in text
    series = metric_series("molecule_chat_upload_forwards_total", exposition=text)
    assert set(series) == {(("outcome", outcome),) for outcome in FORWARD_OUTCOMES}
    assert "# TYPE molecule_chat_upload_forward_duration_seconds histogram" in text
    assert 'molecule_chat_upload_forward_duration_seconds_bucket{le="1200.0"}' in text
