"""Attachments flattened from a feed row's request_body: message parts, else the upload manifest."""

from __future__ import annotations

from typing import Any

import pytest

from molecule.attachments import attachments_from_request_body


def message(*parts: Any) -> dict[str, Any]:
    return {"method": "message/send", "params": {"message": {"role": "user", "parts": list(parts)}}}


MANIFEST = {
    "file_id": "0b6c1c7e-0f4c-4b4f-9d59-3c1f7d2f5a10",
    "name": "cat.png",
    "mimeType": "image/png",
    "size": 3,
    "uri": "platform-pending:ws/0b6c1c7e-0f4c-4b4f-9d59-3c1f7d2f5a10",
}

# (case, request_body, attachments)
CASES = [
    ("no body", None, []),
    ("a string body", '{"params": {}}', []),
    ("a list body", [MANIFEST], []),
    ("text parts only", message({"kind": "text", "text": "hi"}), []),
    (
        "a file part nesting its fields under file",
        message(
            {"kind": "text", "text": "see"},
            {"kind": "file", "file": {"uri": "https://x/a.pdf", "mime_type": "application/pdf"}},
        ),
        [{"kind": "file", "uri": "https://x/a.pdf", "mime_type": "application/pdf"}],
    ),
    (
        "fields on the part itself, type when kind is missing",
        message({"type": "image", "uri": "u1", "name": "a.png", "mime_type": "image/png"}),
        [{"kind": "image", "uri": "u1", "mime_type": "image/png", "name": "a.png"}],
    ),
    (
        "kind wins over type; audio and video are files too",
        message(
            {"kind": "audio", "type": "text", "name": "a.ogg"},
            {"kind": "", "type": "video", "uri": "v"},
        ),
        [{"kind": "audio", "name": "a.ogg"}, {"kind": "video", "uri": "v"}],
    ),
    (
        "a part with neither uri nor name is skipped",
        message(
            {"kind": "file", "file": {"mime_type": "text/plain"}}, {"kind": "file", "uri": "b"}
        ),
        [{"kind": "file", "uri": "b"}],
    ),
    (
        "mimeType is not read in message parts; non-strings count as empty",
        message({"kind": "file", "uri": 5, "name": "n", "mimeType": "text/plain"}),
        [{"kind": "file", "name": "n"}],
    ),
    (
        "file that is not an object: the part's own fields",
        message({"kind": "file", "file": "x", "uri": "own"}),
        [{"kind": "file", "uri": "own"}],
    ),
    ("unknown kinds and non-object parts", message({"kind": "data"}, "file", None), []),
    ("parts not a list", {"params": {"message": {"parts": {"kind": "file"}}}}, []),
    (
        "params.parts is not read",
        {"params": {"parts": [{"kind": "file", "uri": "p"}]}},
        [],
    ),
    (
        "the upload manifest at the root",
        MANIFEST,
        [
            {
                "kind": "image",
                "uri": MANIFEST["uri"],
                "mime_type": "image/png",
                "name": "cat.png",
            }
        ],
    ),
    (
        "manifest: mime_type when there is no mimeType, kind from its major type",
        {"file_id": "f", "name": "song.mp3", "mime_type": "audio/mpeg"},
        [{"kind": "audio", "mime_type": "audio/mpeg", "name": "song.mp3"}],
    ),
    (
        "manifest: mimeType wins over mime_type",
        {"uri": "u", "mimeType": "video/mp4", "mime_type": "text/plain"},
        [{"kind": "video", "uri": "u", "mime_type": "video/mp4"}],
    ),
    (
        "manifest: any other type, or none, is a file",
        {"uri": "u", "mimeType": "application/x-image"},
        [{"kind": "file", "uri": "u", "mime_type": "application/x-image"}],
    ),
    ("manifest: neither uri nor file_id", {"name": "n", "mimeType": "image/png"}, []),
    ("manifest: a file_id but neither uri nor name", {"file_id": "f", "mimeType": "text/x"}, []),
    (
        "message parts win over a manifest at the root",
        {**MANIFEST, **message({"kind": "file", "name": "part.txt"})},
        [{"kind": "file", "name": "part.txt"}],
    ),
    (
        "a message without file parts falls back to the manifest",
        {**MANIFEST, **message({"kind": "text", "text": "t"})},
        [{"kind": "image", "uri": MANIFEST["uri"], "mime_type": "image/png", "name": "cat.png"}],
    ),
]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_attachments_from_request_body(request_body: Any, expected: list[dict[str, str]]) -> None:
    assert attachments_from_request_body(request_body) == expected
