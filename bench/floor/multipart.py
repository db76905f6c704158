"""Multipart bodies, each file part spooled to a temporary file as it streams in."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import IO

CHUNK = 1024 * 1024


def file_parts(
    stream: IO[bytes], remaining: int, boundary: bytes
) -> Iterator[tuple[str, str, IO[bytes], int]]:
    """Each file part of a multipart body, spooled to a temporary file as it streams in.

    Binary COPY needs a field's length before its bytes, and a part's length is known only at
    its end: spooling is what makes COPY possible, as it is for the service.
    """
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"
    done = False

    def fill() -> bool:
        nonlocal buffer, remaining
        if not remaining:
            return False
        data = stream.read(min(CHUNK, remaining))
        remaining -= len(data)
        buffer += data
        return bool(data)

    while not done:
        while (start := buffer.find(delimiter)) < 0 and fill():
            pass
        buffer = buffer[start + len(delimiter) :]
        while len(buffer) < 2 and fill():
            pass
        if buffer.startswith(b"--"):
            return
        while (end := buffer.find(b"\r\n\r\n")) < 0 and fill():
            pass
        headers = buffer[:end].decode("latin-1")
        buffer = buffer[end + 4 :]
        name = re.search(r'filename="([^"]*)"', headers).group(1)  # type: ignore[union-attr]
        kind = re.search(r"Content-Type: *([^\r\n;]+)", headers, re.IGNORECASE)
        mimetype = kind.group(1).strip() if kind else "application/octet-stream"
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by upload() once stored
        size = 0
        keep = len(delimiter) - 1
        while True:
            cut = buffer.find(delimiter)
            if cut >= 0:
                spool.write(buffer[:cut])
                size += cut
                buffer = buffer[cut:]
                break
            if len(buffer) > keep:
                spool.write(buffer[:-keep])
                size += len(buffer) - keep
                buffer = buffer[-keep:]
            if not fill():
                done = True
                break
        yield name, mimetype, spool, size
