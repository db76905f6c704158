"""Query-string parameters: positive integers, timestamps, UUIDs and the page limit."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.http import HttpRequest

from molecule.http.bodies import parse_uuid
from molecule.http.responses import ApiError

_DIGITS = re.compile(r"[0-9]+")
# Larger than any cap; longer digit strings are clamped rather than parsed.
_HUGE = 10**18


def query_positive_int(request: HttpRequest, name: str) -> int | None:
    """``?name=`` as a positive integer (None when absent); anything else is 400.

    Values too long to matter come back as 10**18, for the caller to clamp.
    """
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    # ASCII digits only: int() would also take " 5", "+5", "5_0" and Arabic-Indic digits.
    if not _DIGITS.fullmatch(raw) or not raw.strip("0"):
        raise ApiError(400, f"{name} must be a positive integer")
    return _HUGE if len(raw.lstrip("0")) > 18 else int(raw)


# RFC 3339 as Go's time.RFC3339 parses it: a 'T', seconds, an optional fraction, and a zone.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def query_timestamp(request: HttpRequest, name: str) -> datetime | None:
    """``?name=`` as an RFC 3339 timestamp (None when absent or empty); anything else is 400."""
    raw = request.GET.get(name)
    if not raw:
        return None
    try:
        if not _RFC3339.fullmatch(raw):
            raise ValueError(raw)
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"
        ) from None


def query_uuid(request: HttpRequest, name: str) -> uuid.UUID | None:
    """``?name=`` as a UUID (None when absent or empty); anything else is 400."""
    raw = request.GET.get(name)
    return parse_uuid(raw, name) if raw else None


# A page's rows: upstream's default and cap.
LIMIT_DEFAULT = 100
LIMIT_MAX = 500


def query_limit(request: HttpRequest, *, default: int = LIMIT_DEFAULT) -> int:
    """``?limit=``: ``default`` when absent, clamped to LIMIT_MAX, 400 unless an integer >= 1."""
    value = query_positive_int(request, "limit")
    return default if value is None else min(value, LIMIT_MAX)
