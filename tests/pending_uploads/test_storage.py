"""The storage backends against a real S3 server (moto, or AWS_ENDPOINT_URL_S3's): uploads in
one PUT or in parts, reads in chunks, failures that leave no object, and no bytes in PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from datetime import timedelta

import pytest
from botocore.exceptions import ReadTimeoutError
from django.test import override_settings

from molecule.models import ActivityLog
from pending_uploads import storage
from pending_uploads.conf import MIN_S3_PART_BYTES
from pending_uploads.managers import CHUNK_BYTES, NewUpload, ShortFile
from pending_uploads.models import PendingUpload
from pending_uploads.storage import ObjectMissing, StorageUnavailable
from pending_uploads.storage import s3 as s3_backend
from tests.helpers import (
    assert_json_error,
    body_of,
    bucket_objects,
    make_upload,
    run_sql,
    s3_unreachable,
)

pytestmark = pytest.mark.django_db

TTL = timedelta(hours=24)
MAX_BYTES = 100 * 1024 * 1024
PART = MIN_S3_PART_BYTES


def new_upload(data: bytes, name: str = "f.bin", size: int | None = None) -> NewUpload:
    return NewUpload(
        name, "application/octet-stream", len(data) if size is None else size, io.BytesIO(data)
    )


def put_batch(workspace_id: uuid.UUID, *uploads: NewUpload, **options) -> list[PendingUpload]:
    return PendingUpload.objects.put_batch(
        workspace_id, list(uploads), ttl=TTL, max_bytes=MAX_BYTES, **options
    )


@override_settings(PENDING_UPLOADS_S3_PART_BYTES=PART, PENDING_UPLOADS_S3_PREFIX="uploads/")
@pytest.mark.parametrize(
    "size",
    [1, CHUNK_BYTES + 1, PART, PART + 1, 2 * PART + 7],
    ids=["1-byte", "chunk+1", "one-part", "part+1", "3-parts"],
)
def test_files_round_trip_through_the_bucket_with_key_size_and_sha256(s3_bucket, size):
    data = os.urandom(size)
    workspace_id = uuid.uuid4()
    [row] = put_batch(workspace_id, new_upload(data))

    opened = PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)

    assert opened is not None and opened.length == size
    chunks = list(opened.chunks)
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)
    key = f"uploads/{workspace_id}/{row.file_id}"
    assert bucket_objects(s3_bucket) == {key: size}
    assert run_sql(
        "SELECT content IS NULL, storage_key, size_bytes, content_sha256 FROM pending_uploads"
    ) == [(True, key, size, hashlib.sha256(data).digest())]


def test_postgresql_holds_no_file_bytes_with_the_bucket_set(s3_bucket):
    def table_bytes() -> int:
        return run_sql("SELECT pg_total_relation_size('pending_uploads')")[0][0]

    before = table_bytes()
    put_batch(uuid.uuid4(), *(new_upload(os.urandom(CHUNK_BYTES), f"{n}.bin") for n in range(8)))

    assert run_sql("SELECT count(*), count(content) FROM pending_uploads") == [(8, 0)]
    # 8 MiB went to the bucket; the table grew by a few rows' worth of pages at most.
    assert table_bytes() - before < 256 * 1024
    assert sum(bucket_objects(s3_bucket).values()) == 8 * CHUNK_BYTES


def test_a_bucket_row_and_a_postgresql_row_are_each_read_from_their_store(s3_bucket):
    workspace_id = uuid.uuid4()
    with override_settings(PENDING_UPLOADS_S3_BUCKET=""):
        [inline] = put_batch(workspace_id, new_upload(b"inline bytes"))
    [keyed] = put_batch(workspace_id, new_upload(b"bucket bytes"))

    read = {
        row.file_id: b"".join(
            PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id).chunks
        )
        for row in (inline, keyed)
    }

    assert read == {inline.file_id: b"inline bytes", keyed.file_id: b"bucket bytes"}
    # Switched back off, the bucket row cannot be served: the store is unavailable, not 404.
    with override_settings(PENDING_UPLOADS_S3_BUCKET=""), pytest.raises(StorageUnavailable):
        PendingUpload.objects.open_chunks(keyed.file_id, workspace_id=workspace_id)


@override_settings(PENDING_UPLOADS_S3_PART_BYTES=PART)
@pytest.mark.parametrize(
    ("size", "declared"), [(10, 20), (PART + 10, 2 * PART)], ids=["put", "multipart"]
)
def test_a_short_file_leaves_no_row_and_no_object(s3_bucket, poll_workspace, size, declared):
    uploads = [new_upload(b"first", "a.txt"), new_upload(b"x" * size, "b.bin", declared)]

    with pytest.raises(ShortFile):
        put_batch(poll_workspace.id, *uploads)

    assert PendingUpload.objects.count() == 0
    assert bucket_objects(s3_bucket) == {}
    assert s3_backend.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_refused_transaction_deletes_the_objects_it_wrote(s3_bucket, poll_workspace):
    # What a quota refusal does: the rows and their activity are written, then the last write
    # of the transaction refuses the upload.
    def refuse(rows: list[PendingUpload]) -> None:
        ActivityLog.objects.create(workspace_id=poll_workspace.id, activity_type="a2a_receive")
        assert len(rows) == 3
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        put_batch(
            poll_workspace.id,
            new_upload(b"a", "a.txt"),
            new_upload(b"b", "b.txt"),
            new_upload(b"c", "c.txt"),
            then=refuse,
        )

    assert (PendingUpload.objects.count(), ActivityLog.objects.count()) == (0, 0)
    assert bucket_objects(s3_bucket) == {}


def test_a_missing_object_is_known_when_opened(s3_bucket):
    workspace_id = uuid.uuid4()
    [row] = put_batch(workspace_id, new_upload(b"gone soon"))
    s3_backend.client().delete_object(Bucket=s3_bucket, Key=row.storage_key)

    with pytest.raises(ObjectMissing) as caught:
        PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)

    assert caught.value.key == row.storage_key
    # A bucket that does not exist is the store's failure (503), not a missing file (404).
    with (
        override_settings(PENDING_UPLOADS_S3_BUCKET=f"{s3_bucket}-absent"),
        pytest.raises(StorageUnavailable, match="NoSuchBucket"),
    ):
        PendingUpload.objects.open_chunks(row.file_id, workspace_id=workspace_id)


def test_an_unreachable_bucket_is_unavailable_not_a_hang(s3_bucket, unreachable_s3, caplog):
    workspace_id = uuid.uuid4()
    rows = PendingUpload.objects.bulk_create(
        [PendingUpload(workspace_id=workspace_id, storage_key="k/1", size_bytes=1, filename="a")]
    )

    with pytest.raises(StorageUnavailable):
        PendingUpload.objects.open_chunks(rows[0].file_id, workspace_id=workspace_id)
    with pytest.raises(StorageUnavailable):
        put_batch(workspace_id, new_upload(b"x"))
    # The failed upload's discard could not reach the bucket either: one warning, no error.
    with caplog.at_level(logging.WARNING):
        storage.bucket().discard(rows)
    assert "could not delete 1 objects of a failed upload" in caplog.text
    assert PendingUpload.objects.count() == 1


# --- What the fetch answers when the bucket fails ---------------------------------------------


def content_url(row: PendingUpload) -> str:
    return f"/workspaces/{row.workspace_id}/pending-uploads/{row.file_id}/content"


def test_a_missing_object_is_a_json_404_and_one_log_line(api, poll_workspace, s3_bucket, caplog):
    row = make_upload(workspace_id=poll_workspace.id, content=b"lost")
    s3_backend.client().delete_object(Bucket=s3_bucket, Key=row.storage_key)

    with caplog.at_level(logging.INFO, logger="pending_uploads"):
        response = api.get(content_url(row), **poll_workspace.auth)

    body = assert_json_error(response, 404)
    assert body == {"error": "the stored bytes of this pending upload are missing"}
    [record] = [r for r in caplog.records if r.name.startswith("pending_uploads")]
    assert (record.levelname, record.getMessage()) == (
        "ERROR",
        f"pending upload {row.file_id}: its object {row.storage_key} is missing from the bucket",
    )
    # Not served, so not stamped as fetched.
    assert PendingUpload.objects.get(pk=row.pk).fetched_at is None


def test_an_unreachable_bucket_is_a_json_503_with_retry_after(
    api, poll_workspace, s3_bucket, caplog
):
    row = make_upload(workspace_id=poll_workspace.id, content=b"there")

    with s3_unreachable():
        response = api.get(content_url(row), **poll_workspace.auth)

    assert_json_error(response, 503)
    assert response["Retry-After"] == "5"
    assert "object storage unavailable" in caplog.text
    # Once the bucket is back, the same file is served.
    assert body_of(api.get(content_url(row), **poll_workspace.auth)) == b"there"


# --- Failures inside the backends --------------------------------------------------------------


@override_settings(PENDING_UPLOADS_S3_PART_BYTES=PART)
def test_a_multipart_upload_that_cannot_be_aborted_is_logged_and_raises(
    s3_bucket, monkeypatch, caplog
):
    real_call = s3_backend.S3Storage._call

    def failing(self, operation: str, **params):
        if operation in ("upload_part", "abort_multipart_upload"):
            raise StorageUnavailable(f"{operation}: connection reset")
        return real_call(self, operation, **params)

    monkeypatch.setattr(s3_backend.S3Storage, "_call", failing)

    with pytest.raises(StorageUnavailable, match="upload_part"):
        put_batch(uuid.uuid4(), new_upload(b"x" * (PART + 1)))

    assert "could not abort the multipart upload of " in caplog.text
    assert PendingUpload.objects.count() == 0


class StallingBody:
    """A GET body whose second read times out, as a store that stalls mid-transfer does."""

    def __init__(self) -> None:
        self.closed = False

    def iter_chunks(self, size: int):
        yield b"first"
        raise ReadTimeoutError(endpoint_url="http://store")

    def close(self) -> None:
        self.closed = True


def test_a_store_that_stalls_mid_download_ends_the_body_short(caplog):
    body = StallingBody()

    received = b"".join(s3_backend._stream("a/b", body))

    assert received == b"first"
    assert body.closed
    assert "reading object a/b failed mid-download: Read timeout" in caplog.text


def test_without_a_bucket_there_is_nothing_to_discard_or_delete(s3_bucket):
    rows = [PendingUpload(file_id=uuid.uuid4(), workspace_id=uuid.uuid4(), size_bytes=1)]
    storage.bucket().discard(rows)  # nothing was saved: no call at all
    with override_settings(PENDING_UPLOADS_S3_BUCKET=""), pytest.raises(StorageUnavailable):
        storage.backend().delete(["a/b"])
