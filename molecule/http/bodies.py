"""Request bodies: their declared length, the JSON object, its fields and ids."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from molecule.http.responses import ApiError


def declared_length(request: HttpRequest) -> int | None:
    """The request's Content-Length (None when absent: a chunked body); 400 when it is not a
    number."""
    raw = request.META.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "invalid Content-Length") from None


def parse_uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ApiError(400, f"{what} must be a UUID")


def json_object(request: HttpRequest) -> dict[str, Any]:
    """Return the request's JSON object body, or raise ApiError 400/413/415."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "request body too large") from None
    content_type = request.content_type or ""
    if raw and content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise ApiError(415, "request body must be application/json")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack, e.g. 100,000 brackets.
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    if not _storable(body):
        raise ApiError(400, "request body holds NUL, lone surrogates, NaN or Infinity")
    return body


def _storable(value: Any) -> bool:
    """True when PostgreSQL can hold every string and number in ``value`` (text and jsonb)."""
    # Iterative: the parser already accepted nesting as deep as the interpreter's stack.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _has_surrogate(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_MISSING = object()
# Pass as ``default`` to make a field required.
REQUIRED: Any = _MISSING


def json_field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING
) -> Any:
    """Return ``body[name]`` checked against ``kind``; a missing field without default is 400."""
    value = body.get(name, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ApiError(400, f"{name} is required")
        return default
    # bool is an int in Python, but never a valid count or id here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ApiError(400, f"{name} has the wrong type")
    return value


# The longest free-text field (summaries, task descriptions) a body may carry.
MAX_TEXT = 10_000


def json_text(body: dict[str, Any], name: str, default: Any = "", limit: int = MAX_TEXT) -> Any:
    """``body[name]`` as a string of at most ``limit`` characters; 400 when longer."""
    value = json_field(body, name, str, default)
    if value is not None and len(value) > limit:
        raise ApiError(400, f"{name} is longer than {limit} characters")
    return value
