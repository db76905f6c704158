"""kill -9 mid-write: a gunicorn worker mid-upload, and a sweep between its statement and commit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devtools.processes import manage_command
from molecule.models import ActivityLog
from pending_uploads.models import PendingUpload
from tests.helpers import (
    assert_metric_deltas,
    current_database_url,
    metrics_saved,
    run_sql,
    service_stack,
    sql_installed,
)
from tests.integration.conftest import (
    ACKED_OLD,
    EXPIRED,
    tables_truncate,
    uploads_count_by_kind,
    uploads_insert,
    wait_until,
)
from tests.integration.test_faults import http, register_body

MIB = 1024 * 1024
SWEPT = "molecule_pending_uploads_swept_total"


def open_files_under(pid: int, directory: Path) -> list[str]:
    """What the process holds open in ``directory`` (an unnamed file shows as '#inode')."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_upload_leaves_no_temp_file_and_no_row(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    stack = service_stack(tmp_path, web_workers=1, qclusters=0, extra_env={"TMPDIR": str(spool)})
    with stack, socket.create_connection(("127.0.0.1", stack.port)) as client:
        workspace_id = uuid.uuid4()
        status, _, registered = http(
            "POST", stack.url("/registry/register"), body=register_body(workspace_id)
        )
        assert status == 200, registered
        [worker] = stack.pids()["gunicorn_workers"]

        # A 60 MiB file, of which 8 MiB arrive before the worker dies.
        boundary = "kill-test-boundary"
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=files; filename=big.bin\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        length = len(head) + 60 * MIB + len(f"\r\n--{boundary}--\r\n")
        client.sendall(
            (
                f"POST /workspaces/{workspace_id}/chat/uploads HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {registered['auth_token']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
            + head
        )
        for _ in range(8):
            client.sendall(b"\x00" * MIB)
        held = wait_until(
            lambda: open_files_under(worker, spool),
            timeout=30,
            what="the worker to spool the upload",
        )
        wait_until(
            lambda: spooled_bytes(worker, spool) >= 4 * MIB,
            timeout=30,
            what="the spool file to fill",
        )

        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{worker}").exists(), timeout=10, what="the kill")

    # Unnamed: nothing was ever linked in the directory, and the kernel freed the space.
    assert all("(deleted)" in target for target in held), held
    assert list(spool.iterdir()) == []
    assert not PendingUpload.objects.filter(workspace_id=workspace_id).exists()
    assert not ActivityLog.objects.filter(workspace_id=workspace_id).exists()


def spooled_bytes(pid: int, directory: Path) -> int:
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith(str(directory)):
                total += os.stat(fd).st_size
        except OSError:
            continue
    return total


# --- the sweep killed between its statement and its commit ----------------------------------

# A deferred constraint trigger runs at COMMIT, after the batch statement: on the third batch's
# commit it sleeps, holding the sweep exactly between its statement and its commit. Fault
# injection in the database, not a mock: the sweep's statements run as they are.
TRAP_SETUP = (
    "CREATE TABLE kill_trap_commits (txid bigint PRIMARY KEY)",
    """
    CREATE FUNCTION kill_trap() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM kill_trap_commits WHERE txid = txid_current()) THEN
            INSERT INTO kill_trap_commits VALUES (txid_current());
            IF (SELECT count(*) FROM kill_trap_commits) = 3 THEN
                PERFORM pg_sleep(60);
            END IF;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER kill_trap AFTER DELETE ON pending_uploads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kill_trap()
    """,
)
TRAP_TEARDOWN = (
    "DROP TRIGGER IF EXISTS kill_trap ON pending_uploads",
    "DROP FUNCTION IF EXISTS kill_trap()",
    "DROP TABLE IF EXISTS kill_trap_commits",
)


@pytest.fixture
def commit_trap(transactional_db: None) -> Iterator[None]:
    with sql_installed(TRAP_SETUP, TRAP_TEARDOWN):
        yield
    tables_truncate()


@pytest.mark.slow
def test_a_sweep_killed_between_its_statement_and_its_commit_counts_exactly_what_it_deleted(
    commit_trap: None,
) -> None:
    uploads_insert(ACKED_OLD, 1500)
    uploads_insert(EXPIRED, 1500)
    start = uploads_count_by_kind()
    before = metrics_saved()
    # The server itself notices the lost client during the sleep and aborts the commit.
    options = urlencode({"options": "-c client_connection_check_interval=100"})
    url = current_database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "molecule.settings",
        "DATABASE_URL": f"{url}{'&' if '?' in url else '?'}{options}",
        "PENDING_UPLOADS_SWEEP_BATCH_SIZE": "250",
    }
    sweeper = subprocess.Popen(
        [*manage_command("sweep_uploads")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        backend = wait_until(
            lambda: run_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep' AND query = 'COMMIT'"
            ),
            timeout=30,
            what="the third batch to reach its commit",
        )[0][0]
        sweeper.send_signal(signal.SIGKILL)
        sweeper.wait(10)
        wait_until(
            lambda: not run_sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]),
            timeout=10,
            what="the server to end the orphaned session",
        )
    finally:
        if sweeper.poll() is None:
            sweeper.kill()

    middle = uploads_count_by_kind()
    deleted = {kind: start[kind] - middle[kind] for kind in (ACKED_OLD.name, EXPIRED.name)}
    # Two batches committed with their counts; the third rolled back with its count.
    assert run_sql("SELECT count(*) FROM kill_trap_commits") == [(2,)]
    assert 0 < sum(deleted.values()) < sum(start.values())
    assert_metric_deltas(
        before, SWEPT, "outcome", {"acked": deleted["ackedold"], "expired": deleted["expired"]}
    )

    run_sql("DROP TRIGGER kill_trap ON pending_uploads")
    finished = subprocess.run(
        [*manage_command("sweep_uploads", "--json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert finished.stdout.startswith("{"), finished.stderr
    assert uploads_count_by_kind()[ACKED_OLD.name] == uploads_count_by_kind()[EXPIRED.name] == 0
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 1500, "expired": 1500, "error": 0})
