"""The upload, list, fetch and ack API through real routing and middleware, and hostile input."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client, override_settings
from django.utils import timezone

from molecule.models import ActivityLog
from pending_uploads.models import PendingUpload
from tests.helpers import (
    RegisteredWorkspace,
    assert_json_error,
    body_of,
    bucket_mismatch,
    bucket_objects,
    run_sql,
)

# Every test runs twice: file bytes in PostgreSQL, and in a bucket on the test S3 server.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("storage_mode")]

MIB = 1024 * 1024
DEFAULT_CAP = 100 * MIB
BOUNDARY = "molecule-test-boundary-7f3a"
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
SAFE_MIMETYPE = re.compile(r"[^/\s]+/[^/\s]+")


def table_counts() -> tuple[int, int]:
    """Rows in pending_uploads and activity_logs, read with plain SQL; in bucket mode, it also
    checks that every object in the bucket is a row's, so "nothing stored" means no object."""
    assert bucket_mismatch() == (set(), set())
    return run_sql(
        "SELECT (SELECT count(*) FROM pending_uploads), (SELECT count(*) FROM activity_logs)"
    )[0]


def stored_sizes() -> list[tuple[int, int]]:
    """Each row's size and the length of its stored bytes: its content, or its object."""
    rows = run_sql("SELECT size_bytes, octet_length(content), storage_key FROM pending_uploads")
    objects = bucket_objects(settings.PENDING_UPLOADS_S3_BUCKET) if rows and rows[0][2] else {}
    return [(size, objects[key] if key else length) for size, length, key in rows]


def upload(
    api: Client, ws: RegisteredWorkspace, files: Sequence[SimpleUploadedFile]
) -> HttpResponse:
    return api.post(ws.url("chat/uploads"), {"files": list(files)}, **ws.auth)


def text_file(name: str, data: bytes, content_type: str = "text/plain") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def raw_part(disposition: str, body: bytes = b"hello", content_type: bytes | None = None) -> bytes:
    """One multipart part named ``files``; ``disposition`` carries the filename parameter."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; {disposition}\r\n'
    ctype = b"" if content_type is None else b"Content-Type: " + content_type + b"\r\n"
    return head.encode() + ctype + b"\r\n" + body + b"\r\n"


def closed(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def post_raw(
    api: Client, ws: RegisteredWorkspace, raw: bytes, boundary: str = BOUNDARY
) -> HttpResponse:
    return api.generic(
        "POST",
        ws.url("chat/uploads"),
        data=raw,
        content_type=f"multipart/form-data; boundary={boundary}",
        **ws.auth,
    )


def fetch(api: Client, ws: RegisteredWorkspace, file_id: object) -> HttpResponse:
    return api.get(ws.url(f"pending-uploads/{file_id}/content"), **ws.auth)


def ack(api: Client, ws: RegisteredWorkspace, file_id: object) -> HttpResponse:
    return api.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth)


def file_id_of(entry: dict) -> uuid.UUID:
    return uuid.UUID(entry["uri"].rsplit("/", 1)[1])


def has_control_or_space(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" or char.isspace() for char in text)


def assert_attachment_headers(response: HttpResponse, name: str) -> None:
    # An ASCII fallback in the quoted form, the exact UTF-8 name in filename* (RFC 6266).
    fallback = "".join(char if char.isascii() else "_" for char in name)
    assert response["Content-Disposition"] == (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = {
        directive.strip().split(" ", 1)[0]: directive.strip()
        for directive in response["Content-Security-Policy"].split(";")
        if directive.strip()
    }
    # Restrictive: nothing may load and the document runs in a sandbox without our origin.
    assert csp["default-src"] == "default-src 'none'"
    assert csp["sandbox"] == "sandbox"


# --- The round trip --------------------------------------------------------------------------


def test_round_trip_from_registration_to_ack(api):
    workspace_id = uuid.uuid4()
    registered = api.post(
        "/registry/register",
        {"id": str(workspace_id), "delivery_mode": "poll", "agent_card": {"name": "poller"}},
        content_type="application/json",
    )
    assert registered.status_code == 200, registered.content
    token = registered.json()["auth_token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    base = f"/workspaces/{workspace_id}"
    first, second = b"first file\n", bytes(range(256)) * 40

    answer = api.post(
        f"{base}/chat/uploads",
        {
            "files": [
                text_file("notes one.txt", first, "text/plain; charset=utf-8"),
                text_file("blob.bin", second, "Application/X-Custom"),
            ]
        },
        **auth,
    )

    assert answer.status_code == 200, answer.content
    files = answer.json()["files"]
    assert [set(entry) for entry in files] == [{"uri", "name", "mimeType", "size"}] * 2
    assert [(f["name"], f["mimeType"], f["size"]) for f in files] == [
        ("notes_one.txt", "text/plain", len(first)),
        ("blob.bin", "application/x-custom", len(second)),
    ]
    ids = [file_id_of(entry) for entry in files]
    assert [f["uri"] for f in files] == [f"platform-pending:{workspace_id}/{i}" for i in ids]

    listing = api.get(f"{base}/pending-uploads", **auth)
    assert listing.status_code == 200
    rows = listing.json()
    assert [row["file_id"] for row in rows] == [str(i) for i in ids]
    assert set(rows[0]) == {
        "file_id",
        "name",
        "mimeType",
        "size",
        "created_at",
        "fetched_at",
        "expires_at",
        "uri",
    }
    assert [row["fetched_at"] for row in rows] == [None, None]
    assert [row["uri"] for row in rows] == [f["uri"] for f in files]

    for file_id, data, name, mimetype in [
        (ids[0], first, "notes_one.txt", "text/plain"),
        (ids[1], second, "blob.bin", "application/x-custom"),
    ]:
        fetched = api.get(f"{base}/pending-uploads/{file_id}/content", **auth)
        assert fetched.status_code == 200
        assert body_of(fetched) == data
        assert fetched["Content-Type"] == mimetype
        assert fetched["Content-Length"] == str(len(data))
        assert_attachment_headers(fetched, name)

    acked = api.post(f"{base}/pending-uploads/{ids[0]}/ack", **auth)
    assert acked.status_code == 200
    assert acked.content == b'{"acked":true}'
    # Acked files stay readable until the sweep deletes them (the canvas re-reads previews).
    assert body_of(api.get(f"{base}/pending-uploads/{ids[0]}/content", **auth)) == first
    again = api.post(f"{base}/pending-uploads/{ids[0]}/ack", **auth)
    assert (again.status_code, again.content) == (200, b'{"acked":true}')
    assert again["Content-Type"] == "application/json"
    # The other file is untouched by the first one's ack.
    remaining = api.get(f"{base}/pending-uploads", **auth).json()
    assert [row["file_id"] for row in remaining] == [str(ids[1])]


def test_every_fetch_stamps_fetched_at_acked_or_not(api, poll_workspace):
    ws = poll_workspace
    entry = upload(api, ws, [text_file("a.txt", b"payload")]).json()["files"][0]
    file_id = file_id_of(entry)

    first = fetch(api, ws, file_id)
    stamped = PendingUpload.objects.get(pk=file_id).fetched_at
    # Set a recognisable stamp: the next fetch must overwrite it with its own time.
    marker = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    PendingUpload.objects.filter(pk=file_id).update(fetched_at=marker)
    second = fetch(api, ws, file_id)
    restamped = PendingUpload.objects.get(pk=file_id).fetched_at
    ack(api, ws, file_id)
    PendingUpload.objects.filter(pk=file_id).update(fetched_at=marker)
    after_ack = fetch(api, ws, file_id)

    assert first.status_code == second.status_code == after_ack.status_code == 200
    assert body_of(first) == body_of(second) == body_of(after_ack) == b"payload"
    assert stamped is not None
    assert restamped is not None and restamped > marker
    assert PendingUpload.objects.get(pk=file_id).fetched_at > marker


def test_fetch_of_a_row_with_empty_mimetype_is_octet_stream(api, poll_workspace):
    ws = poll_workspace
    entry = upload(api, ws, [text_file("a.txt", b"x", "text/plain")]).json()["files"][0]
    PendingUpload.objects.filter(pk=file_id_of(entry)).update(mimetype="")

    response = fetch(api, ws, file_id_of(entry))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"


def test_list_is_oldest_first_in_upload_order_across_requests(api, poll_workspace):
    ws = poll_workspace
    # Names out of alphabetical order and random file_ids: only upload order explains the list.
    first = upload(
        api, ws, [text_file(name, b"x") for name in ("m.txt", "c.txt", "x.txt", "a.txt")]
    )
    second = upload(api, ws, [text_file(name, b"y") for name in ("b.txt", "z.txt")])
    expected = [e["uri"] for e in first.json()["files"] + second.json()["files"]]

    listing = api.get(ws.url("pending-uploads"), **ws.auth).json()

    assert [row["uri"] for row in listing] == expected
    assert [row["name"] for row in listing] == [
        "m.txt",
        "c.txt",
        "x.txt",
        "a.txt",
        "b.txt",
        "z.txt",
    ]


def test_list_leaves_out_acked_expired_and_foreign_rows(api, poll_workspace, other_workspace):
    ws = poll_workspace
    files = upload(api, ws, [text_file(n, b"x") for n in ("keep", "acked", "expired")])
    keep, acked, expired = (file_id_of(e) for e in files.json()["files"])
    upload(api, other_workspace, [text_file("foreign", b"x")])
    assert ack(api, ws, acked).status_code == 200
    PendingUpload.objects.filter(pk=expired).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    listing = api.get(ws.url("pending-uploads"), **ws.auth).json()

    assert [row["file_id"] for row in listing] == [str(keep)]


def test_each_file_writes_one_activity_row(api, poll_workspace):
    ws = poll_workspace
    answer = upload(
        api, ws, [text_file("a b.txt", b"12345"), text_file("c.png", b"\x89PNG", "image/png")]
    )
    files = answer.json()["files"]

    rows = list(ActivityLog.objects.filter(workspace_id=ws.id).order_by("id"))

    assert [(r.activity_type, r.method, r.summary) for r in rows] == [
        ("a2a_receive", "chat_upload_receive", "chat_upload_receive: a_b.txt"),
        ("a2a_receive", "chat_upload_receive", "chat_upload_receive: c.png"),
    ]
    assert [r.request_body for r in rows] == [
        {
            "file_id": str(file_id_of(entry)),
            "name": entry["name"],
            "mimeType": entry["mimeType"],
            "size": entry["size"],
            "uri": entry["uri"],
        }
        for entry in files
    ]
    assert [f["size"] for f in files] == [5, 4]


# --- Status codes of the upload table ---------------------------------------------------------


def test_64_files_are_accepted(api, poll_workspace):
    response = upload(api, poll_workspace, [text_file(f"f{i}.txt", b"x") for i in range(64)])

    assert response.status_code == 200, response.content
    assert len(response.json()["files"]) == 64
    assert table_counts() == (64, 64)


@pytest.mark.parametrize("count", [65, 66, 100])
def test_more_than_64_files_is_400_and_stores_nothing(api, poll_workspace, count):
    response = upload(api, poll_workspace, [text_file(f"f{i}.txt", b"x") for i in range(count)])

    # The app's own answer: Django's part-count limit (DATA_UPLOAD_MAX_NUMBER_FILES, by default
    # 100) is not reached first.
    assert assert_json_error(response, 400) == {"error": "at most 64 files per request"}
    assert table_counts() == (0, 0)


def test_a_request_without_a_files_part_is_400(api, poll_workspace):
    ws = poll_workspace
    response = api.post(
        ws.url("chat/uploads"), {"file": text_file("a.txt", b"x"), "note": "hi"}, **ws.auth
    )

    assert_json_error(response, 400)
    assert table_counts() == (0, 0)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"files": []}', "application/json"),
        (b"files=abc", "application/x-www-form-urlencoded"),
        (b"", "multipart/form-data; boundary=" + BOUNDARY),
        (b"abc", "multipart/form-data"),
        (b"abc", "multipart/form-data; boundary="),
        (b"abc", "text/plain"),
    ],
    ids=["json", "urlencoded", "empty-multipart", "no-boundary", "empty-boundary", "text"],
)
def test_a_body_that_is_not_usable_multipart_is_400(api, poll_workspace, body, content_type):
    ws = poll_workspace
    response = api.generic(
        "POST", ws.url("chat/uploads"), data=body, content_type=content_type, **ws.auth
    )

    assert_json_error(response, 400)
    assert table_counts() == (0, 0)


MALFORMED = {
    "wrong-boundary": (closed(raw_part('filename="a.txt"')), "some-other-boundary"),
    "no-close-delimiter": (raw_part('filename="a.txt"'), BOUNDARY),
    "cut-in-headers": (raw_part('filename="a.txt"')[:60], BOUNDARY),
    "cut-in-body": (raw_part('filename="a.txt"', b"x" * 5000)[:2000], BOUNDARY),
    "garbage": (b"\x00\xff" * 200, BOUNDARY),
    "only-close-delimiter": (f"--{BOUNDARY}--\r\n".encode(), BOUNDARY),
    # The first part is complete; the body ends inside the second. Storing the first alone
    # would silently lose a file the client sent.
    "second-part-cut-in-headers": (
        raw_part('filename="a.txt"') + raw_part('filename="b.txt"')[:60],
        BOUNDARY,
    ),
    "second-part-cut-in-body": (
        raw_part('filename="a.txt"') + raw_part('filename="b.txt"', b"y" * 5000)[:2000],
        BOUNDARY,
    ),
    "ends-after-a-delimiter": (
        raw_part('filename="a.txt"') + f"--{BOUNDARY}\r\n".encode(),
        BOUNDARY,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_multipart_is_400_and_stores_nothing(api, poll_workspace, case):
    raw, boundary = MALFORMED[case]

    response = post_raw(api, poll_workspace, raw, boundary)

    assert_json_error(response, 400)
    assert table_counts() == (0, 0)


def test_a_well_formed_raw_body_is_accepted(api, poll_workspace):
    # The control for the malformed cases: the same helpers, with a proper close delimiter.
    raw = closed(raw_part('filename="a.txt"'), raw_part('filename="b.txt"', b"bee"))

    response = post_raw(api, poll_workspace, raw)

    assert response.status_code == 200, response.content
    assert [f["name"] for f in response.json()["files"]] == ["a.txt", "b.txt"]


def test_an_empty_file_is_400_and_stores_nothing(api, poll_workspace):
    response = upload(
        api, poll_workspace, [text_file("full.txt", b"data"), text_file("empty.txt", b"")]
    )

    assert_json_error(response, 400)
    assert table_counts() == (0, 0)


@override_settings(PENDING_UPLOADS_MAX_FILE_BYTES=1024)
def test_a_file_over_the_cap_is_413_with_details_and_stores_nothing(api, poll_workspace):
    response = upload(
        api,
        poll_workspace,
        [text_file("small.txt", b"s" * 10), text_file("big one.bin", b"b" * 1025)],
    )

    body = assert_json_error(response, 413)
    assert body == {"error": body["error"], "filename": "big_one.bin", "size": 1025, "max": 1024}
    assert table_counts() == (0, 0)


@override_settings(PENDING_UPLOADS_MAX_FILE_BYTES=1024)
def test_a_file_exactly_at_the_cap_is_accepted(api, poll_workspace):
    response = upload(api, poll_workspace, [text_file("edge.bin", b"e" * 1024)])

    assert response.status_code == 200, response.content
    assert response.json()["files"][0]["size"] == 1024


# The default caps, as a new user meets them: the request cap leaves room for the multipart
# envelope, so the published per-file cap is what a file meets.
def test_the_default_cap_refuses_100_mib_plus_one_byte_as_a_file_too_large(api, poll_workspace):
    assert api.get("/uploads/limits").json()["per_file_bytes"] == DEFAULT_CAP

    response = upload(api, poll_workspace, [text_file("huge.bin", b"\0" * (DEFAULT_CAP + 1))])

    body = assert_json_error(response, 413)
    assert body == {
        "error": "file too large",
        "filename": "huge.bin",
        "size": DEFAULT_CAP + 1,
        "max": DEFAULT_CAP,
    }
    assert table_counts() == (0, 0)


def test_the_default_cap_accepts_exactly_100_mib(api, poll_workspace):
    # The app's cap and the database CHECK must agree at the boundary.
    response = upload(api, poll_workspace, [text_file("max.bin", b"\1" * DEFAULT_CAP)])

    assert response.status_code == 200, response.content
    assert stored_sizes() == [(DEFAULT_CAP, DEFAULT_CAP)]


@override_settings(PENDING_UPLOADS_MAX_REQUEST_BYTES=4096)
def test_a_body_over_the_request_cap_is_413_and_stores_nothing(api, poll_workspace):
    response = upload(
        api, poll_workspace, [text_file("a.bin", b"a" * 2500), text_file("b.bin", b"b" * 2500)]
    )

    assert_json_error(response, 413)
    assert table_counts() == (0, 0)


def test_unknown_workspace_is_401(api, poll_workspace):
    # No token is valid for a workspace that does not exist, so 401, not 404: a 404 would tell
    # a prober which workspace ids exist.
    response = api.post(
        f"/workspaces/{uuid.uuid4()}/chat/uploads",
        {"files": [text_file("a.txt", b"x")]},
        **poll_workspace.auth,
    )

    assert_json_error(response, 401)
    assert table_counts() == (0, 0)


BAD_IDS = [
    "not-a-uuid",
    "1",
    "00000000-0000-0000-0000-00000000000g",
    "%27%20OR%201%3D1--",
    "a" * 300,
]
WORKSPACE_ENDPOINTS = [
    ("post", "chat/uploads"),
    ("get", "pending-uploads"),
    ("get", f"pending-uploads/{uuid.UUID(int=1)}/content"),
    ("post", f"pending-uploads/{uuid.UUID(int=2)}/ack"),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize(("method", "suffix"), WORKSPACE_ENDPOINTS)
def test_non_uuid_workspace_id_is_400(api, poll_workspace, method, suffix, bad_id):
    response = getattr(api, method)(f"/workspaces/{bad_id}/{suffix}", **poll_workspace.auth)

    assert_json_error(response, 400)


@pytest.mark.parametrize("bad_id", ["nope", "1", "g" * 36, "%27%20OR%20%271%27%3D%271"])
@pytest.mark.parametrize(("method", "action"), [("get", "content"), ("post", "ack")])
def test_non_uuid_file_id_is_400(api, poll_workspace, method, action, bad_id):
    ws = poll_workspace
    response = getattr(api, method)(ws.url(f"pending-uploads/{bad_id}/{action}"), **ws.auth)

    assert_json_error(response, 400)


@pytest.mark.parametrize(
    ("suffix", "methods"),
    [
        ("chat/uploads", ["GET", "PUT", "PATCH", "DELETE"]),
        ("pending-uploads", ["POST", "PUT", "PATCH", "DELETE"]),
        ("pending-uploads/{file_id}/content", ["POST", "PUT", "PATCH", "DELETE"]),
        ("pending-uploads/{file_id}/ack", ["GET", "PUT", "PATCH", "DELETE"]),
    ],
)
def test_wrong_methods_are_405_json(api, poll_workspace, suffix, methods):
    ws = poll_workspace
    entry = upload(api, ws, [text_file("a.txt", b"x")]).json()["files"][0]
    url = ws.url(suffix.format(file_id=file_id_of(entry)))

    for method in methods:
        response = api.generic(method, url, **ws.auth)
        assert_json_error(response, 405)
        assert response["Allow"]
    # Nothing was acked, fetched or added by the refused methods.
    row = PendingUpload.objects.get()
    assert (row.acked_at, row.fetched_at) == (None, None)


def _make_acked(api: Client, ws: RegisteredWorkspace, file_id: uuid.UUID) -> uuid.UUID:
    assert ack(api, ws, file_id).status_code == 200
    return file_id


def _make_expired(api: Client, ws: RegisteredWorkspace, file_id: uuid.UUID) -> uuid.UUID:
    PendingUpload.objects.filter(pk=file_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return file_id


def _make_absent(api: Client, ws: RegisteredWorkspace, file_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid4()


def _make_deleted(api: Client, ws: RegisteredWorkspace, file_id: uuid.UUID) -> uuid.UUID:
    PendingUpload.objects.filter(pk=file_id).delete()
    return file_id


GONE = {
    "expired": _make_expired,
    "absent": _make_absent,
    "deleted": _make_deleted,
}


@pytest.mark.parametrize(
    ("state", "action"),
    # An acked row stays fetchable until the sweep deletes it, so the canvas's attachment
    # previews still load after the workspace acked; it is gone only for a second ack.
    [
        (state, action)
        for state in GONE
        for action in ("content", "ack")
        if (state, action) != ("acked", "content")
    ],
)
def test_gone_rows_are_404(api, poll_workspace, state, action):
    ws = poll_workspace
    entry = upload(api, ws, [text_file("a.txt", b"x")]).json()["files"][0]
    file_id = GONE[state](api, ws, file_id_of(entry))

    response = fetch(api, ws, file_id) if action == "content" else ack(api, ws, file_id)

    assert_json_error(response, 404)


def test_an_expired_row_stays_unacked_after_an_ack_attempt(api, poll_workspace):
    ws = poll_workspace
    file_id = file_id_of(upload(api, ws, [text_file("a.txt", b"x")]).json()["files"][0])
    _make_expired(api, ws, file_id)

    assert_json_error(ack(api, ws, file_id), 404)
    # The sweep must later count it as expired, not acked.
    assert PendingUpload.objects.get(pk=file_id).acked_at is None


# --- Cross-workspace isolation ----------------------------------------------------------------


def test_another_workspaces_token_on_my_url_is_401(api, poll_workspace, other_workspace):
    mine, theirs = poll_workspace, other_workspace
    file_id = file_id_of(upload(api, mine, [text_file("a.txt", b"secret")]).json()["files"][0])
    before = table_counts()

    for method, suffix in [
        ("post", "chat/uploads"),
        ("get", "pending-uploads"),
        ("get", f"pending-uploads/{file_id}/content"),
        ("post", f"pending-uploads/{file_id}/ack"),
    ]:
        response = getattr(api, method)(mine.url(suffix), **theirs.auth)
        assert_json_error(response, 401)

    assert table_counts() == before
    row = PendingUpload.objects.get(pk=file_id)
    assert (row.fetched_at, row.acked_at) == (None, None)


def test_my_url_with_another_workspaces_file_id_is_404(api, poll_workspace, other_workspace):
    owner, intruder = poll_workspace, other_workspace
    file_id = file_id_of(upload(api, owner, [text_file("a.txt", b"secret")]).json()["files"][0])

    assert_json_error(fetch(api, intruder, file_id), 404)
    assert_json_error(ack(api, intruder, file_id), 404)
    assert api.get(intruder.url("pending-uploads"), **intruder.auth).json() == []
    row = PendingUpload.objects.get(pk=file_id)
    assert (row.fetched_at, row.acked_at) == (None, None)
    # The owner still gets the bytes.
    assert body_of(fetch(api, owner, file_id)) == b"secret"


# --- Atomic multi-file commit -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(
    PENDING_UPLOADS_MAX_FILE_BYTES=DEFAULT_CAP + MIB,
    PENDING_UPLOADS_MAX_REQUEST_BYTES=2 * DEFAULT_CAP,
)
def test_a_database_error_on_the_third_row_leaves_nothing(register):
    # The setting lets a 100 MiB + 1 file through; PostgreSQL's CHECK (the default cap)
    # refuses it as the third row, after two rows and their activity rows were inserted.
    ws = register("poller", "poll")
    api = Client(raise_request_exception=False)
    files = [
        text_file("one.txt", b"1"),
        text_file("two.txt", b"2"),
        text_file("three.bin", b"3" * (DEFAULT_CAP + 1)),
        text_file("four.txt", b"4"),
    ]

    response = api.post(ws.url("chat/uploads"), {"files": files}, **ws.auth)

    assert table_counts() == (0, 0)
    assert response["Content-Type"] == "application/json"
    # A file PostgreSQL refuses for its size is a file over the effective cap: 413, not 500.
    body = assert_json_error(response, 413)
    assert body["filename"] == "three.bin"


# --- Hostile input ----------------------------------------------------------------------------


HOSTILE_NAMES = {
    "nul": ('filename="a\x00b.txt"', {"ab.txt", "a_b.txt"}),
    "nul-rfc2231": ("filename*=UTF-8''a%00b.txt", {"ab.txt", "a_b.txt"}),
    "crlf-rfc2231": ("filename*=UTF-8''a%0D%0Ab.txt", {"ab.txt", "a__b.txt"}),
    "header-injection": (
        "filename*=UTF-8''x.txt%22%0D%0AX-Evil%3A%201",
        {"x.txt_X-Evil__1", "x.txt___X-Evil__1"},
    ),
    "quote": ("filename*=UTF-8''a%22b.txt", {"a_b.txt"}),
    "unicode-raw": ('filename="résumé.pdf"', {"r_sum_.pdf"}),
    "unicode-rfc2231": ("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", {"r_sum_.pdf"}),
    "emoji": ("filename*=UTF-8''%F0%9F%98%80.png", {"_.png"}),
    "rtl-override": ("filename*=UTF-8''evil%E2%80%AEfdp.exe", {"evil_fdp.exe", "evilfdp.exe"}),
    "traversal": ('filename="../../etc/passwd"', {"passwd"}),
    "traversal-backslash": ('filename="..\\\\..\\\\x"', {"x"}),
    "absolute": ('filename="/etc/shadow"', {"shadow"}),
    "windows-path": ('filename="C:\\\\Windows\\\\win.ini"', {"win.ini"}),
    "html-entities": ('filename="&lt;script&gt;.html"', {"_script_.html"}),
    "sql": (
        'filename="x\'; DROP TABLE pending_uploads;--.txt"',
        {"x___DROP_TABLE_pending_uploads_--.txt"},
    ),
    "long": (f'filename="{"n" * 300}.txt"', {"n" * 96 + ".txt"}),
}


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_hostile_filenames_are_stored_sanitized(api, poll_workspace, case):
    ws = poll_workspace
    disposition, allowed = HOSTILE_NAMES[case]

    response = post_raw(api, ws, closed(raw_part(disposition, b"body", b"text/plain")))

    assert response.status_code == 200, response.content
    name = response.json()["files"][0]["name"]
    assert name in allowed
    assert SAFE_NAME.fullmatch(name)
    row = PendingUpload.objects.get()
    assert row.filename == name
    assert ActivityLog.objects.get().summary == f"chat_upload_receive: {name}"
    fetched = fetch(api, ws, row.file_id)
    assert body_of(fetched) == b"body"
    assert_attachment_headers(fetched, name)
    # Both tables still exist and hold exactly what this request wrote.
    assert table_counts() == (1, 1)


@pytest.mark.parametrize(
    "disposition", ['filename="."', 'filename=".."', "filename*=UTF-8''..", 'filename="a/.."']
)
def test_dot_filenames_are_dropped_or_renamed(api, poll_workspace, disposition):
    response = post_raw(api, poll_workspace, closed(raw_part(disposition, b"dots")))

    # Either answer is safe, and which one depends on Django's multipart parser: it may drop
    # the part (400 without files) or keep it under the fallback name "file".
    if response.status_code == 200:
        assert [f["name"] for f in response.json()["files"]] == ["file"]
        assert table_counts() == (1, 1)
    else:
        assert_json_error(response, 400)
        assert table_counts() == (0, 0)


@pytest.mark.parametrize(
    "content_type",
    [
        b"text/html\rX-Evil: 1",
        b"text/html\nX-Evil: 1",
        b"text/html\r\n X-Evil: 1",
        b"text/h\x00tml",
        b"text/\thtml",
        b"text /html",
        b"text/html\x0b",
        b"text/html\x7f",
        "text/htmlé".encode("latin-1"),
        "text/html\u00a0x".encode(),
        b"text/plain'; DROP TABLE pending_uploads;--",
        b"",
    ],
    ids=[
        "cr",
        "lf",
        "folded-crlf",
        "nul",
        "tab",
        "space",
        "vtab",
        "del",
        "latin1",
        "nbsp",
        "sql",
        "empty",
    ],
)
def test_hostile_part_content_types_store_a_clean_mimetype(api, poll_workspace, content_type):
    ws = poll_workspace

    response = post_raw(api, ws, closed(raw_part('filename="a.txt"', b"body", content_type)))

    assert response.status_code == 200, response.content
    mimetype = PendingUpload.objects.get().mimetype
    assert response.json()["files"][0]["mimeType"] == mimetype
    assert not has_control_or_space(mimetype)
    assert SAFE_MIMETYPE.fullmatch(mimetype)
    assert mimetype.isascii()
    assert fetch(api, ws, PendingUpload.objects.get().file_id)["Content-Type"] == mimetype


@pytest.mark.parametrize(
    ("filename", "mimetype", "body"),
    [
        ("page.html", "text/html", b"<script>alert(document.cookie)</script>"),
        (
            "logo.svg",
            "image/svg+xml",
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        ),
        ("app.xhtml", "application/xhtml+xml", b"<html><script>alert(1)</script></html>"),
    ],
)
def test_active_content_is_served_as_a_sandboxed_attachment(
    api, poll_workspace, filename, mimetype, body
):
    ws = poll_workspace
    entry = upload(api, ws, [text_file(filename, body, mimetype)]).json()["files"][0]

    response = fetch(api, ws, file_id_of(entry))

    assert response.status_code == 200
    assert body_of(response) == body
    assert response["Content-Type"] == mimetype
    assert_attachment_headers(response, filename)
