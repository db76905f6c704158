"""The client-side deadline: a wait past DB_CLIENT_TIMEOUT cuts its connection; short waits pass."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from molecule import dbdeadline
from molecule.middleware import is_statement_timeout
from pending_uploads.managers import NewUpload
from pending_uploads.models import PendingUpload
from tests.helpers import assert_metric_delta, metrics_saved, run_sql

CUTS = "molecule_db_client_timeouts_total"
# Far past any deadline below, and past the 30 s statement_timeout: a sleep that is not cut
# ends in PostgreSQL's own 57014, which the tests tell apart.
SLEEP_SQL = "SELECT pg_sleep(60)"

# A connection of its own per test: the watch is put on connections opened after enable().
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watched() -> Iterator[None]:
    connection.close()
    dbdeadline.enable()
    try:
        yield
    finally:
        dbdeadline.disable()
        connection.close()
        # The server goes on sleeping for a client it cannot see is gone; end those sessions,
        # or the test database cannot be dropped.
        run_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event = 'PgSleep'"
        )


def assert_cut(error: pytest.ExceptionInfo[OperationalError]) -> None:
    assert not is_statement_timeout(error.value), error.value
    assert "closed" in str(error.value) or "lost" in str(error.value), error.value


@override_settings(DB_CLIENT_TIMEOUT=timedelta(milliseconds=300))
def test_a_wait_past_the_deadline_is_cut_and_the_next_query_reconnects(watched) -> None:
    before = metrics_saved()

    with pytest.raises(OperationalError) as error:
        run_sql(SLEEP_SQL)

    assert_cut(error)
    assert_metric_delta(before, 1, CUTS)
    assert not connection.is_usable()
    # What Django does at the end of the request: drop the broken connection.
    connection.close_if_unusable_or_obsolete()
    assert run_sql("SELECT 1") == [(1,)]


@override_settings(DB_CLIENT_TIMEOUT=timedelta(milliseconds=300))
def test_a_commit_waits_under_the_deadline_too(watched) -> None:
    run_sql("CREATE TEMP TABLE slow_commit (id int)")
    run_sql(
        "CREATE FUNCTION pg_temp.sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$"
    )
    run_sql(
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON slow_commit DEFERRABLE INITIALLY "
        "DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.sleep_at_commit()"
    )
    connection.set_autocommit(False)
    run_sql("INSERT INTO slow_commit VALUES (1)")

    with pytest.raises(OperationalError) as error:
        connection.commit()

    assert_cut(error)


class SlowFile(io.BytesIO):
    """A file whose every read takes ``delay`` seconds: time spent outside the database."""

    def __init__(self, data: bytes, delay: float) -> None:
        super().__init__(data)
        self.delay = delay

    def read(self, size: int | None = -1) -> bytes:
        threading.Event().wait(self.delay)
        return super().read(size)


@override_settings(DB_CLIENT_TIMEOUT=timedelta(milliseconds=300))
def test_the_deadline_is_per_wait_not_per_operation(watched) -> None:
    # Four 1 MiB chunks at 0.4 s each: the COPY takes longer than the deadline in all, and
    # each of its waits for the database is short.
    data = b"x" * (4 * 1024 * 1024)
    upload = NewUpload("slow.bin", "application/octet-stream", len(data), SlowFile(data, 0.4))
    before = metrics_saved()

    row = PendingUpload.objects.put(uuid.uuid4(), upload, ttl=timedelta(hours=1), max_bytes=2**30)

    assert run_sql(
        "SELECT octet_length(content) FROM pending_uploads WHERE file_id = %s", [row.file_id]
    ) == [(len(data),)]
    assert_metric_delta(before, 0, CUTS)


@override_settings(DB_CLIENT_TIMEOUT=timedelta(seconds=30))
def test_the_health_check_gets_a_shorter_deadline(watched, monkeypatch) -> None:
    monkeypatch.setattr(dbdeadline, "HEALTH_CHECK_SECONDS", 0.3)
    run_sql("SELECT 1")
    probe = connection.connection.cursor

    def slow_probe() -> object:
        cursor = probe()
        execute = cursor.execute
        cursor.execute = lambda *args, **kwargs: execute(SLEEP_SQL)
        return cursor

    monkeypatch.setattr(connection.connection, "cursor", slow_probe)

    assert connection.is_usable() is False


@override_settings(DB_CLIENT_TIMEOUT=timedelta(0))
def test_a_zero_timeout_watches_nothing(watched) -> None:
    run_sql("SELECT 1")

    with dbdeadline.shorter_deadline(5):
        assert dbdeadline._seconds() == 5
    assert dbdeadline._seconds() == 0
    assert run_sql("SELECT pg_sleep(0.4)") == [("",)]


def test_nested_deadlines_keep_the_shortest() -> None:
    with dbdeadline.shorter_deadline(2), dbdeadline.shorter_deadline(5):
        assert dbdeadline._seconds() == 2


def test_connections_of_processes_that_did_not_enable_it_are_left_alone() -> None:
    connection.close()
    run_sql("SELECT 1")

    assert "wait" not in vars(connection.connection)


def test_a_forked_child_starts_a_watchdog_of_its_own() -> None:
    parent = dbdeadline.WATCHDOG
    try:
        dbdeadline._fresh_watchdog_after_fork()
        assert dbdeadline.WATCHDOG is not parent
    finally:
        dbdeadline.WATCHDOG = parent


class ClosedConnection:
    class pgconn:
        @property
        def socket(self) -> int:
            raise OSError("the connection is closed")

    pgconn = pgconn()


@override_settings(DB_CLIENT_TIMEOUT=timedelta(seconds=1))
def test_a_closed_connection_is_not_watched() -> None:
    # psycopg raises its own error for it, without waiting.
    watched = dbdeadline._watched_wait(ClosedConnection(), lambda *args: "raised by psycopg")

    assert watched("gen") == "raised by psycopg"


def test_other_databases_are_left_alone() -> None:
    class Other:
        vendor = "sqlite"

    other = Other()
    dbdeadline.connection_watch(None, other)

    assert vars(other) == {}
