"""Make client-supplied filenames and content types safe to store and to echo in headers."""

import re

MAX_FILENAME = 100
MAX_EXTENSION = 16
FALLBACK_NAME = "file"
FALLBACK_MIMETYPE = "application/octet-stream"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# A conservative subset of RFC 7230 token characters; anything else falls back to octet-stream.
_MIME = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


def sanitize_filename(raw: str | None) -> str:
    """Return a basename of 1..100 characters from ``[A-Za-z0-9._-]``, never ``.`` or ``..``."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name.replace(" ", "_"))
    if name in ("", ".", ".."):
        return FALLBACK_NAME
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= MAX_EXTENSION:
            keep = MAX_FILENAME - len(extension) - 1
            name = f"{stem[:keep]}.{extension}"
        else:
            name = name[:MAX_FILENAME]
    return name


def sanitize_mimetype(raw: str | None) -> str:
    """Return ``type/subtype`` in lower case without parameters, or application/octet-stream."""
    essence = (raw or "").split(";", 1)[0]
    # Surrounding spaces around the essence are legal; inner whitespace or controls are not.
    essence = essence.strip(" \t")
    if not _MIME.fullmatch(essence):
        return FALLBACK_MIMETYPE
    return essence.lower()
