"""The attachments a feed row announces, flattened from its request_body as upstream does."""

from __future__ import annotations

from typing import Any

# Message parts that carry a file; the discriminator is "kind", else "type".
FILE_PART_KINDS = frozenset({"file", "image", "audio", "video"})
# The MIME major types that name their own attachment kind; anything else is a "file".
MEDIA_KINDS = ("image", "audio", "video")

Attachment = dict[str, str]


def attachments_from_request_body(request_body: Any) -> list[Attachment]:
    """``[{kind, uri?, mime_type?, name?}, ...]`` for the files a row's request_body names.

    An A2A message's file parts (params.message.parts) when there are any; otherwise the
    flat manifest an upload's row carries at the root. Empty values are left out.
    """
    if not isinstance(request_body, dict):
        return []
    return _from_message_parts(request_body) or _from_upload_manifest(request_body)


def _from_message_parts(body: dict[str, Any]) -> list[Attachment]:
    params = body.get("params")
    message = params.get("message") if isinstance(params, dict) else None
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(parts, list):
        return []
    found = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = _text(part, "kind") or _text(part, "type")
        if kind not in FILE_PART_KINDS:
            continue
        # A part either nests its fields under "file" or carries them itself.
        fields = part["file"] if isinstance(part.get("file"), dict) else part
        uri, name = _text(fields, "uri"), _text(fields, "name")
        if uri or name:
            found.append(_attachment(kind, uri, _text(fields, "mime_type"), name))
    return found


def _from_upload_manifest(body: dict[str, Any]) -> list[Attachment]:
    uri, name = _text(body, "uri"), _text(body, "name")
    if not (uri or _text(body, "file_id")) or not (uri or name):
        return []
    mime_type = _text(body, "mimeType") or _text(body, "mime_type")
    kind = next((media for media in MEDIA_KINDS if mime_type.startswith(f"{media}/")), "file")
    return [_attachment(kind, uri, mime_type, name)]


def _attachment(kind: str, uri: str, mime_type: str, name: str) -> Attachment:
    entry = {"kind": kind, "uri": uri, "mime_type": mime_type, "name": name}
    return {key: value for key, value in entry.items() if value}


def _text(fields: dict[str, Any], key: str) -> str:
    """``fields[key]`` when it is a string, else ''."""
    value = fields.get(key)
    return value if isinstance(value, str) else ""
