"""The admin's reads on pending_uploads: UUID arms, filename words, what a sweep leaves."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from pending_uploads.managers.admin import FilenameWords, filename_words
from pending_uploads.models import PendingUpload
from tests.helpers import make_upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "filename",
    ["quarterly_report.pdf", "Report-2.TXT", ".hidden", "a..b--c__d", "noextension", "x.tar.gz"],
)
def test_python_and_sql_split_filenames_alike(filename: str) -> None:
    make_upload(filename=filename)
    (words,) = PendingUpload.objects.annotate(words=FilenameWords(F("filename"))).values_list(
        "words", flat=True
    )
    # The database keeps the empty word before a leading separator; searches never ask for it.
    assert [word for word in words if word] == filename_words(filename)


def test_matching_uuid_finds_both_arms_and_nothing_else() -> None:
    workspace = uuid.uuid4()
    mine = [make_upload(workspace_id=workspace) for _ in range(2)]
    other = make_upload()
    by_workspace = set(PendingUpload.objects.matching_uuid(workspace).values_list("pk", flat=True))
    assert by_workspace == {row.pk for row in mine}
    by_file = set(PendingUpload.objects.matching_uuid(other.pk).values_list("pk", flat=True))
    assert by_file == {other.pk}
    assert not PendingUpload.objects.matching_uuid(uuid.uuid4()).exists()


def test_with_filename_words_needs_every_word() -> None:
    make_upload(filename="invoice-2024.pdf")
    make_upload(filename="invoice-2025.pdf")
    found = PendingUpload.objects.with_filename_words(["invoice", "2024"])
    assert list(found.values_list("filename", flat=True)) == ["invoice-2024.pdf"]


def test_sweep_left_alone_counts_up_to_the_cap_and_times_the_next() -> None:
    now = timezone.now()
    for minutes in (5, 10, 20):
        row = make_upload("acked")
        PendingUpload.objects.filter(pk=row.pk).update(acked_at=now - timedelta(minutes=minutes))
    past_retention = make_upload("acked")
    PendingUpload.objects.filter(pk=past_retention.pk).update(acked_at=now - timedelta(hours=2))
    make_upload("pending")
    make_upload("fetched")
    make_upload("expired")

    left = PendingUpload.objects.sweep_left_alone(timedelta(hours=1), cap=100)
    assert (left.acked_within_retention, left.unacked_unexpired) == (3, 2)
    # The oldest acked row inside the retention (20 min ago) is due in about 40 min.
    assert 39 * 60 < left.acked_next_due_seconds <= 40 * 60
    assert 23.9 * 3600 < left.unacked_next_expiry_seconds <= 24 * 3600

    capped = PendingUpload.objects.sweep_left_alone(timedelta(hours=1), cap=2)
    assert (capped.acked_within_retention, capped.unacked_unexpired) == (2, 2)


def test_sweep_left_alone_on_an_empty_table() -> None:
    left = PendingUpload.objects.sweep_left_alone(timedelta(hours=1), cap=100)
    assert tuple(left) == (0, None, 0, None)
