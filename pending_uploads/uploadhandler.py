"""Upload parts spooled to unnamed temporary files, which the kernel frees when the process dies.

Django's TemporaryFileUploadHandler writes each part to a NamedTemporaryFile in /tmp and
deletes it on close: a worker killed mid-upload (SIGKILL, the OOM killer, gunicorn's timeout)
never closes it, and up to 100 MiB per part stays on disk for good. tempfile.TemporaryFile has
no name (O_TMPFILE on Linux, or unlinked at once elsewhere), so the space is freed with the
last descriptor, however the process ends. Nothing here needs the path a named file offers.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler


class UnnamedTemporaryUploadedFile(UploadedFile):
    """An uploaded part in a temporary file without a name."""

    def __init__(
        self,
        name: str,
        content_type: str,
        size: int,
        charset: str | None,
        content_type_extra: dict[str, Any] | None = None,
    ) -> None:
        # FILE_UPLOAD_TEMP_DIR as Django's handler uses it; None is TMPDIR, or /tmp.
        # Closed by the request (or by the kernel), as Django closes its own parts.
        file = tempfile.TemporaryFile(suffix=".upload", dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
        super().__init__(file, name, content_type, size, charset, content_type_extra)


class UnnamedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler, with parts that leave nothing behind a killed process."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = UnnamedTemporaryUploadedFile(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )

    def upload_interrupted(self) -> None:
        # Closing is deleting: there is no path to remove.
        if hasattr(self, "file"):
            self.file.close()
