"""Upload parts spool to temporary files without a name."""

from __future__ import annotations

from pathlib import Path

from django.test import override_settings

from pending_uploads.uploadhandler import UnnamedTemporaryFileUploadHandler


def spool(directory: Path) -> UnnamedTemporaryFileUploadHandler:
    handler = UnnamedTemporaryFileUploadHandler()
    with override_settings(FILE_UPLOAD_TEMP_DIR=str(directory)):
        handler.new_file("files", "notes.txt", "text/plain", None, "utf-8")
    handler.receive_data_chunk(b"hello ", 0)
    handler.receive_data_chunk(b"world", 6)
    return handler


def test_a_part_is_spooled_without_a_name_and_read_back(tmp_path: Path) -> None:
    handler = spool(tmp_path)

    part = handler.file_complete(11)

    assert list(tmp_path.iterdir()) == []
    assert (part.name, part.size, part.content_type, part.charset) == (
        "notes.txt",
        11,
        "text/plain",
        "utf-8",
    )
    assert part.read() == b"hello world"
    part.close()


def test_an_interrupted_upload_closes_its_file(tmp_path: Path) -> None:
    handler = spool(tmp_path)

    handler.upload_interrupted()

    assert handler.file.closed
    UnnamedTemporaryFileUploadHandler().upload_interrupted()
