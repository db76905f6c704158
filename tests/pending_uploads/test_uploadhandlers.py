"""The upload handler spools each file part to disk a chunk at a time, every byte in order."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from pending_uploads.managers import CHUNK_BYTES
from pending_uploads.uploadhandlers import ChunkedTemporaryFileUploadHandler

PIECE = 64 * 1024  # what Django's multipart parser hands over each time


def test_the_setting_names_this_handler_alone():
    assert settings.FILE_UPLOAD_HANDLERS == [
        "pending_uploads.uploadhandlers.ChunkedTemporaryFileUploadHandler"
    ]


@pytest.mark.parametrize("size", [1, PIECE, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 5])
def test_every_byte_arrives_in_order_in_few_writes(size, monkeypatch):
    data = os.urandom(size)
    handler = ChunkedTemporaryFileUploadHandler()
    handler.new_file("files", "a.bin", "application/octet-stream", size)
    writes: list[int] = []
    real_write = handler.file.file.write

    def counted(block: bytes) -> int:
        writes.append(len(block))
        return real_write(block)

    monkeypatch.setattr(handler.file.file, "write", counted)
    for start in range(0, size, PIECE):
        assert handler.receive_data_chunk(data[start : start + PIECE], start) is None

    done = handler.file_complete(size)

    try:
        assert (done.size, done.read()) == (size, data)
        # One write per chunk, and one for what is left: never one per 64 KiB piece.
        assert len(writes) == -(-size // CHUNK_BYTES)
        assert all(length >= CHUNK_BYTES for length in writes[:-1])
    finally:
        done.close()
