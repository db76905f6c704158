"""The byte path: put_from_file (binary COPY in chunks) and open_chunks (substring reads)."""

from __future__ import annotations

import io
import os
import uuid
from datetime import timedelta

import psycopg
import pytest

from pending_uploads.managers import CHUNK_BYTES, NewUpload, ShortFile
from pending_uploads.models import PendingUpload
from tests.helpers import current_database_url, make_upload, run_sql

TTL = timedelta(hours=24)
MAX_BYTES = 100 * 1024 * 1024


def new_upload(data: bytes, name: str = "f.bin", size: int | None = None) -> NewUpload:
    return NewUpload(
        name, "application/octet-stream", len(data) if size is None else size, io.BytesIO(data)
    )


def put(workspace_id: uuid.UUID, data: bytes) -> PendingUpload:
    return PendingUpload.objects.put(workspace_id, new_upload(data), ttl=TTL, max_bytes=MAX_BYTES)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "size",
    [1, 1000, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES + 1],
    ids=["1-byte", "1000", "chunk-1", "chunk", "chunk+1", "2chunks+1"],
)
def test_sizes_round_trip_byte_for_byte_in_bounded_chunks(size):
    data = os.urandom(size)
    workspace_id = uuid.uuid4()
    row = put(workspace_id, data)

    opened = PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)

    assert opened is not None
    assert opened.length == size
    chunks = list(opened.chunks)
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)
    assert len(chunks) == -(-size // CHUNK_BYTES)
    assert run_sql(
        "SELECT size_bytes, octet_length(content) FROM pending_uploads WHERE file_id = %s",
        [row.file_id],
    ) == [(size, size)]


@pytest.mark.django_db
def test_open_chunks_returns_the_row_without_loading_its_bytes():
    workspace_id = uuid.uuid4()
    row = put(workspace_id, b"abc")
    opened = PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)
    assert opened is not None
    assert (opened.row.file_id, opened.row.filename, opened.row.size_bytes) == (
        row.file_id,
        "f.bin",
        3,
    )
    assert opened.row.expires_at - opened.row.created_at == TTL
    assert "content" in opened.row.get_deferred_fields()


@pytest.mark.django_db
def test_staff_open_serves_any_present_row_and_nothing_absent():
    expired = make_upload("expired", content=b"old bytes")
    # Another workspace's fetchable check would refuse it; the staff path does not ask.
    assert (
        PendingUpload.objects.open_chunks(expired.file_id, workspace_id=expired.workspace_id)
        is None
    )
    opened = PendingUpload.objects.open_chunks(expired.file_id, workspace_id=None)
    assert opened is not None
    assert b"".join(opened.chunks) == b"old bytes"
    assert PendingUpload.objects.open_chunks(uuid.uuid4(), workspace_id=None) is None


@pytest.mark.django_db
def test_content_column_is_stored_external_and_uncompressed():
    (storage,) = run_sql(
        "SELECT attstorage FROM pg_attribute"
        " WHERE attrelid = 'pending_uploads'::regclass AND attname = 'content'"
    )
    assert storage == ("e",)
    # Compressible bytes stay uncompressed: EXTERNAL never compresses.
    row = put(uuid.uuid4(), b"a" * (CHUNK_BYTES + 1))
    assert run_sql(
        "SELECT pg_column_compression(content) FROM pending_uploads WHERE file_id = %s",
        [row.file_id],
    ) == [(None,)]


@pytest.mark.django_db
@pytest.mark.parametrize("declared", [20, CHUNK_BYTES + 10], ids=["insert", "copy"])
def test_a_file_shorter_than_its_size_rolls_the_whole_batch_back(poll_workspace, declared):
    uploads = [new_upload(b"first", "a.txt"), new_upload(b"x" * 10, "b.bin", size=declared)]

    with pytest.raises(ShortFile):
        PendingUpload.objects.put_batch(poll_workspace.id, uploads, ttl=TTL, max_bytes=MAX_BYTES)

    assert PendingUpload.objects.count() == 0


IDLE_IN_TRANSACTION_SQL = """
SELECT count(*) FROM pg_stat_activity
 WHERE state = 'idle in transaction' AND datname = current_database()
"""


@pytest.mark.django_db(transaction=True)
def test_a_row_swept_mid_download_ends_short_never_wrong():
    data = os.urandom(3 * CHUNK_BYTES + 7)
    workspace_id = uuid.uuid4()
    row = put(workspace_id, data)
    opened = PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)
    assert opened is not None
    received = next(opened.chunks) + next(opened.chunks)

    # The sweep, on a connection of its own, deletes the row and commits between two chunks.
    with psycopg.connect(current_database_url(), autocommit=True) as sweeper:
        deleted = sweeper.execute("DELETE FROM pending_uploads WHERE file_id = %s", [row.file_id])
        assert deleted.rowcount == 1
    received += b"".join(opened.chunks)

    assert len(received) == 2 * CHUNK_BYTES < opened.length
    assert received == data[: len(received)]
    # No transaction is left open by the reads: the connection is idle, outside any block.
    # (This database's sessions only: the server may be shared with other test runs.)
    assert run_sql(IDLE_IN_TRANSACTION_SQL) == [(0,)]


@pytest.mark.django_db
def test_a_batch_mixing_small_and_copied_files_keeps_upload_order_and_ttl(poll_workspace):
    sizes = [5, CHUNK_BYTES + 1, 7, 2 * CHUNK_BYTES, 1]
    uploads = [new_upload(os.urandom(size), f"{n}.bin") for n, size in enumerate(sizes)]

    PendingUpload.objects.put_batch(poll_workspace.id, uploads, ttl=TTL, max_bytes=MAX_BYTES)

    rows = run_sql(
        "SELECT filename, created_at, expires_at - created_at FROM pending_uploads"
        " ORDER BY created_at"
    )
    assert [name for name, _, _ in rows] == [f"{n}.bin" for n in range(len(sizes))]
    assert len({created for _, created, _ in rows}) == len(sizes)
    assert {ttl for _, _, ttl in rows} == {TTL}
