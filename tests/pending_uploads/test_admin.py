"""The pending-uploads admin: staff only, read-only, cheap on big tables, with Sweep now."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pending_uploads.admin import parse_search
from pending_uploads.models import PendingUpload
from pending_uploads.storage import s3
from tests.helpers import body_of, make_upload, run_sql

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:pending_uploads_pendingupload_changelist")
SWEEP = reverse("admin:pending_uploads_pendingupload_sweep")
LOGIN = reverse("admin:login")


def one_of_each_state() -> dict[str, PendingUpload]:
    return {state: make_upload(state, filename=f"{state}.txt") for state in STATE_NAMES}


STATE_NAMES = ("pending", "fetched", "acked", "expired")
UUID_A = "6f1d2c3b-0000-4000-8000-00000000000a"
UUID_B = "6f1d2c3b-0000-4000-8000-00000000000b"


def shown_ids(response) -> set[uuid.UUID]:
    assert response.status_code == 200, response.content[:500]
    return {row.file_id for row in response.context["cl"].result_list}


def cell(html: str, row: PendingUpload, field: str) -> str:
    """The text of one list cell in the row of ``row``."""
    rows = re.findall(r"<tr>.*?</tr>", html, re.S)
    (tr,) = [tr for tr in rows if str(row.file_id) in tr]
    match = re.search(rf'<t[dh] class="field-{field}[^"]*">(.*?)</t[dh]>', tr, re.S)
    assert match, f"no field-{field} cell in {tr}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


@pytest.fixture
def non_staff_client(django_user_model) -> Client:
    user = django_user_model.objects.create_user("visitor", password="not-staff-pw-123")
    client = Client()
    client.force_login(user)
    return client


def staff_client(django_user_model, username: str, codename: str) -> Client:
    """A logged-in staff user who holds the one permission ``codename``."""
    user = django_user_model.objects.create_user(
        username, password=f"{username}-pw-123", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_without_view_client(django_user_model) -> Client:
    """Staff may enter the admin, but holds no permission on pending uploads."""
    return staff_client(django_user_model, "clerk", "view_workspace")


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login() -> None:
    response = Client().get(CHANGELIST)
    assert is_login_redirect(response)
    assert f"next={CHANGELIST}" in response["Location"]


def test_non_staff_is_sent_to_login(non_staff_client: Client) -> None:
    assert is_login_redirect(non_staff_client.get(CHANGELIST))


def test_staff_without_view_permission_is_refused(staff_without_view_client: Client) -> None:
    assert staff_without_view_client.get(CHANGELIST).status_code == 403


def test_staff_sees_the_list(admin_client: Client) -> None:
    row = make_upload()
    assert shown_ids(admin_client.get(CHANGELIST)) == {row.file_id}


# --- Columns ----------------------------------------------------------------------------------


def test_list_shows_every_column(admin_client: Client) -> None:
    row = make_upload(filename="report.pdf", mimetype="application/pdf", content=b"x" * 1024)
    html = admin_client.get(CHANGELIST).content.decode()
    # The header row, in order (Django marks each header cell with column-<name>).
    columns = re.findall(r'<th[^>]*class="[^"]*\bcolumn-(\w+)', html)
    assert " ".join(columns) == "file workspace_link filename mimetype size state created expires"
    assert cell(html, row, "file") == str(row.file_id)[:8]
    assert cell(html, row, "workspace_link") == str(row.workspace_id)[:8]
    assert cell(html, row, "filename") == "report.pdf"
    assert cell(html, row, "mimetype") == "application/pdf"
    # filesizeformat keeps number and unit together with a no-break space.
    assert cell(html, row, "size") == "1.0\xa0KB"
    assert cell(html, row, "state") == "pending"
    local = timezone.localtime(row.created_at)
    assert cell(html, row, "created") == local.strftime("%Y-%m-%d %H:%M")
    assert cell(html, row, "expires") == timezone.localtime(row.expires_at).strftime(
        "%Y-%m-%d %H:%M"
    )


def test_uuids_are_short_monospace_with_the_full_value_on_hover_and_in_search(
    admin_client: Client,
) -> None:
    row = make_upload()
    html = admin_client.get(CHANGELIST).content.decode()
    change = reverse("admin:pending_uploads_pendingupload_change", args=[row.file_id])
    # The file cell links to the row; the workspace cell searches for the workspace.
    assert (
        f'<a class="uuid" href="?q={row.workspace_id}" title="{row.workspace_id}">'
        f"{str(row.workspace_id)[:8]}</a>"
    ) in html
    assert re.search(
        rf'<a href="{re.escape(change)}[^"]*"><span class="uuid" title="{row.file_id}">'
        rf"{str(row.file_id)[:8]}</span></a>",
        html,
    ), html
    assert "font-family: ui-monospace" in html


def test_list_is_newest_first(admin_client: Client) -> None:
    rows = [make_upload(filename=f"n{n}.txt") for n in range(3)]
    base = timezone.now()
    for age, row in enumerate(rows):
        PendingUpload.objects.filter(pk=row.pk).update(created_at=base - timedelta(minutes=age))
    shown = [r.filename for r in admin_client.get(CHANGELIST).context["cl"].result_list]
    assert shown == ["n0.txt", "n1.txt", "n2.txt"]


def test_only_the_indexed_column_sorts(admin_client: Client) -> None:
    make_upload()
    html = admin_client.get(CHANGELIST).content.decode()
    sortable = re.findall(r'<th scope="col" class="sortable[^"]*column-([a-z_]+)', html)
    assert sortable == ["created"]


@pytest.mark.parametrize(
    ("size", "shown"),
    [(1, "1\xa0byte"), (1536, "1.5\xa0KB"), (3 * 1024 * 1024, "3.0\xa0MB")],
)
def test_size_is_human_readable(admin_client: Client, size: int, shown: str) -> None:
    row = make_upload(content=b"z" * size)
    assert cell(admin_client.get(CHANGELIST).content.decode(), row, "size") == shown


def test_state_column_names_each_state(admin_client: Client) -> None:
    rows = one_of_each_state()
    html = admin_client.get(CHANGELIST).content.decode()
    assert {state: cell(html, row, "state") for state, row in rows.items()} == {
        state: state for state in STATE_NAMES
    }


# --- Filters, search, date hierarchy ----------------------------------------------------------


@pytest.mark.parametrize("state", STATE_NAMES)
def test_state_filter_returns_exactly_its_rows(admin_client: Client, state: str) -> None:
    rows = one_of_each_state()
    # A second row in the same state, so "exactly" is not satisfied by any single row.
    extra = make_upload(state, filename=f"{state}-2.txt")
    shown = shown_ids(admin_client.get(CHANGELIST, {"state": state}))
    assert shown == {rows[state].file_id, extra.file_id}


def test_state_filter_links_are_offered(admin_client: Client) -> None:
    html = admin_client.get(CHANGELIST).content.decode()
    for state in STATE_NAMES:
        assert f'href="?state={state}"' in html


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("image", {"photo.png", "scan.jpeg"}),
        ("text", {"notes.txt"}),
        ("application", {"report.pdf"}),
        ("video", set()),
    ],
)
def test_mimetype_family_filter(admin_client: Client, family: str, expected: set[str]) -> None:
    for filename, mimetype in [
        ("photo.png", "image/png"),
        ("scan.jpeg", "image/jpeg"),
        ("notes.txt", "text/plain"),
        ("report.pdf", "application/pdf"),
    ]:
        make_upload(filename=filename, mimetype=mimetype)
    response = admin_client.get(CHANGELIST, {"mimetype": family})
    assert response.status_code == 200
    assert {row.filename for row in response.context["cl"].result_list} == expected


def test_search_by_exact_workspace_id(admin_client: Client) -> None:
    workspace = uuid.uuid4()
    mine = {make_upload(workspace_id=workspace).file_id for _ in range(2)}
    make_upload()
    assert shown_ids(admin_client.get(CHANGELIST, {"q": str(workspace)})) == mine


def test_search_by_exact_file_id(admin_client: Client) -> None:
    target = make_upload()
    make_upload()
    assert shown_ids(admin_client.get(CHANGELIST, {"q": str(target.file_id)})) == {target.file_id}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("report", {"quarterly_report.pdf", "Report-2.txt"}),
        ("REPORT", {"quarterly_report.pdf", "Report-2.txt"}),
        ("report pdf", {"quarterly_report.pdf"}),
        ("quarterly_report.pdf", {"quarterly_report.pdf"}),
        ("2", {"Report-2.txt"}),
        # Whole words only: a substring would need pg_trgm, which the embedded server lacks.
        ("repo", set()),
        ("...", set()),
        ("x" * 101, set()),
    ],
)
def test_search_by_filename_words(admin_client: Client, query: str, expected: set[str]) -> None:
    for filename in ("quarterly_report.pdf", "Report-2.txt", "photo.png"):
        make_upload(filename=filename)
    response = admin_client.get(CHANGELIST, {"q": query})
    assert response.status_code == 200
    assert {row.filename for row in response.context["cl"].result_list} == expected


def test_search_by_workspace_and_filename_word(admin_client: Client) -> None:
    workspace = uuid.uuid4()
    hit = make_upload(workspace_id=workspace, filename="invoice-1.pdf")
    make_upload(workspace_id=workspace, filename="photo.png")
    make_upload(filename="invoice-2.pdf")
    found = shown_ids(admin_client.get(CHANGELIST, {"q": f"invoice {workspace}"}))
    assert found == {hit.file_id}


@pytest.mark.parametrize(
    ("text", "key", "words", "ignored", "impossible"),
    [
        ("", None, [], 0, False),
        ("report", None, ["report"], 0, False),
        ("a b c d e", None, ["a", "b", "c"], 2, False),
        ("a.b.c.d", None, ["a", "b", "c"], 1, False),
        ("Report report REPORT", None, ["report"], 0, False),
        (f"x {UUID_A} y {UUID_B}", uuid.UUID(UUID_A), ["x", "y"], 1, False),
        ("y" * 100, None, ["y" * 100], 0, False),
        ("y" * 101, None, [], 0, True),
        (" ".join(f"t{n}" for n in range(500)), None, ["t0", "t1", "t2"], 497, False),
    ],
)
def test_parse_search_reads_one_uuid_and_three_words(
    text: str, key: uuid.UUID | None, words: list[str], ignored: int, impossible: bool
) -> None:
    terms = parse_search(text)
    assert (terms.key, terms.words, terms.ignored, terms.impossible) == (
        key,
        words,
        ignored,
        impossible,
    )


def test_500_terms_run_the_statements_of_3(admin_client: Client) -> None:
    make_upload(filename="t0-t1-t2.txt")
    many = " ".join(f"t{n}" for n in range(500))

    def statements(query: str) -> list[tuple[str, int]]:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(CHANGELIST, {"q": query})
        assert response.status_code == 200
        assert {row.filename for row in response.context["cl"].result_list} == {"t0-t1-t2.txt"}
        return [(q["sql"].count("t0"), len(q["sql"])) for q in pending_upload_sql(captured)]

    assert statements(many) == statements("t0 t1 t2")


@pytest.mark.parametrize(
    ("query", "ignored"), [("a b c d e", "2 more terms were"), ("a b c d", "1 more term was")]
)
def test_ignored_terms_are_reported(admin_client: Client, query: str, ignored: str) -> None:
    response = admin_client.get(CHANGELIST, {"q": query})
    texts = [str(m) for m in response.context["messages"]]
    assert texts == [f"The search reads one UUID and up to 3 filename words; {ignored} ignored."]


def test_date_hierarchy_on_created_at(admin_client: Client) -> None:
    row = make_upload()
    response = admin_client.get(CHANGELIST)
    assert response.context["cl"].date_hierarchy == "created_at"
    assert 'class="toplinks"' in response.content.decode()
    year = row.created_at.year
    assert shown_ids(admin_client.get(CHANGELIST, {"created_at__year": year})) == {row.file_id}
    assert shown_ids(admin_client.get(CHANGELIST, {"created_at__year": year - 1})) == set()


# --- Read-only --------------------------------------------------------------------------------


def test_no_add(admin_client: Client) -> None:
    add_url = reverse("admin:pending_uploads_pendingupload_add")
    form = {
        "workspace_id": str(uuid.uuid4()),
        "filename": "by-hand.txt",
        "mimetype": "text/plain",
        "size_bytes": "4",
    }

    response = admin_client.post(add_url, form)

    # Only the upload API writes rows (with their bytes and activity row).
    assert response.status_code == 403
    assert not PendingUpload.objects.exists()
    assert add_url not in admin_client.get(CHANGELIST).content.decode()


def test_change_view_is_read_only(admin_client: Client) -> None:
    row = make_upload(filename="keep.txt")
    url = reverse("admin:pending_uploads_pendingupload_change", args=[row.file_id])
    html = admin_client.get(url).content.decode()
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    response = admin_client.post(url, {"filename": "changed.txt", "mimetype": "text/html"})
    assert response.status_code == 403
    row_after = PendingUpload.objects.get(pk=row.pk)
    assert (row_after.filename, row_after.mimetype) == ("keep.txt", "text/plain")


def test_no_delete(admin_client: Client) -> None:
    row = make_upload()
    url = reverse("admin:pending_uploads_pendingupload_delete", args=[row.file_id])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    # Nor as a bulk action on the list.
    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [str(row.file_id)]}
    )
    assert response.status_code in (200, 302)
    assert PendingUpload.objects.filter(pk=row.pk).exists()
    assert "delete_selected" not in admin_client.get(CHANGELIST).content.decode()


# --- Content and download ---------------------------------------------------------------------


def test_detail_page_links_to_download_and_never_shows_bytes(admin_client: Client) -> None:
    secret = f"SECRET-BYTES-{uuid.uuid4()}".encode()
    row = make_upload(filename="secret.txt", content=secret)
    url = reverse("admin:pending_uploads_pendingupload_change", args=[row.file_id])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert secret not in response.content
    download = reverse("admin:pending_uploads_pendingupload_download", args=[row.file_id])
    assert f'href="{download}"' in response.content.decode()


@pytest.mark.usefixtures("storage_mode")
def test_download_serves_the_bytes_as_an_attachment(admin_client: Client) -> None:
    payload = b"<html><script>alert(1)</script></html>"
    row = make_upload(filename="page.html", mimetype="text/html", content=payload)
    url = reverse("admin:pending_uploads_pendingupload_download", args=[row.file_id])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert body_of(response) == payload
    assert response["Content-Type"] == "text/html"
    assert response["Content-Disposition"] == (
        "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"
    )
    assert response["Content-Length"] == str(len(payload))
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp


def test_download_of_a_missing_object_goes_back_to_the_row_with_the_reason(
    admin_client: Client, s3_bucket: str
) -> None:
    row = make_upload(content=b"lost")
    s3.client().delete_object(Bucket=s3_bucket, Key=row.storage_key)
    url = reverse("admin:pending_uploads_pendingupload_download", args=[row.file_id])

    response = admin_client.get(url, follow=True)

    assert response.redirect_chain == [
        (reverse("admin:pending_uploads_pendingupload_change", args=[row.file_id]), 302)
    ]
    assert [str(m) for m in response.context["messages"]] == [
        "Download failed: the stored bytes of this pending upload are missing."
    ]


def test_download_of_an_unknown_file_is_404(admin_client: Client) -> None:
    url = reverse("admin:pending_uploads_pendingupload_download", args=[uuid.uuid4()])
    assert admin_client.get(url).status_code == 404


def test_download_refused_to_anonymous_and_non_staff(
    non_staff_client: Client, staff_without_view_client: Client
) -> None:
    secret = b"only-for-staff"
    row = make_upload(content=secret)
    url = reverse("admin:pending_uploads_pendingupload_download", args=[row.file_id])
    for client in (Client(), non_staff_client):
        response = client.get(url)
        assert is_login_redirect(response)
        assert secret not in response.content
    response = staff_without_view_client.get(url)
    assert response.status_code in (403, 404)
    assert secret not in response.content


# --- Queries ----------------------------------------------------------------------------------


def pending_upload_sql(captured: CaptureQueriesContext) -> list[dict]:
    return [q for q in captured.captured_queries if '"pending_uploads"' in q["sql"]]


def pending_upload_selects(captured: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and '"pending_uploads"' in query["sql"]
    ]


@pytest.mark.parametrize("page", ["list", "filtered list", "search", "detail"])
def test_pages_never_load_content(admin_client: Client, page: str) -> None:
    rows = one_of_each_state()
    url, params = {
        "list": (CHANGELIST, {}),
        "filtered list": (CHANGELIST, {"state": "pending", "mimetype": "text"}),
        "search": (CHANGELIST, {"q": "acked"}),
        "detail": (
            reverse("admin:pending_uploads_pendingupload_change", args=[rows["acked"].file_id]),
            {},
        ),
    }[page]
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(url, params).status_code == 200
    selects = pending_upload_selects(captured)
    assert selects, "the page read no pending_uploads rows at all"
    loading_content = [sql for sql in selects if '"content"' in sql]
    assert loading_content == []


def has_count(sql: str) -> bool:
    return re.search(r"\bCOUNT\(\*\)", sql, re.I) is not None


BIG_TABLE_ROWS = 20_000


@pytest.fixture
def big_table() -> Iterator[int]:
    """~20k rows with planner statistics, so the admin sees a table worth estimating."""
    run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype)
        SELECT gen_random_uuid(), '\\x00'::bytea, 1, 'bulk-' || n || '.bin',
               'application/octet-stream'
          FROM generate_series(1, %s) AS n
        """,
        [BIG_TABLE_ROWS],
    )
    run_sql("ANALYZE pending_uploads")
    yield BIG_TABLE_ROWS
    # ANALYZE writes pg_class.reltuples in place, so the estimate would outlive the test's
    # rollback and mislead later tests: analyze the emptied table again before rolling back.
    run_sql("DELETE FROM pending_uploads")
    run_sql("ANALYZE pending_uploads")


def test_unfiltered_list_of_a_big_table_uses_the_row_estimate(
    admin_client: Client, big_table: int
) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert [sql for sql in pending_upload_selects(captured) if has_count(sql)] == []
    assert any("reltuples" in query["sql"] for query in captured.captured_queries)
    # The planner's estimate is close to, not necessarily equal to, the real row count.
    cl = response.context["cl"]
    assert 0.75 * big_table <= cl.result_count <= 1.25 * big_table
    # ... and it says so, wherever a count is shown.
    html = response.content.decode()
    label = f"about {cl.result_count:,} pending uploads (estimate)"
    assert cl.paginator.count_label == label
    assert label in html
    assert not re.search(r"\d results?\b", html)


def test_filtered_list_counts_up_to_the_cap(admin_client: Client, big_table: int) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST, {"state": "pending"})
    assert response.status_code == 200
    counts = [sql for sql in pending_upload_selects(captured) if has_count(sql)]
    # Never an exact full COUNT: the matches are counted inside a LIMIT.
    assert len(counts) == 1
    assert re.search(r"LIMIT 10001\) subquery", counts[0]), counts[0]
    cl = response.context["cl"]
    assert (cl.result_count, cl.paginator.count_kind) == (10_000, "capped")
    html = response.content.decode()
    assert "10,000+ pending uploads" in html
    assert not re.search(r"\d results?\b", html)


def test_small_filtered_list_is_counted_exactly(admin_client: Client) -> None:
    one_of_each_state()
    response = admin_client.get(CHANGELIST, {"state": "acked"})
    cl = response.context["cl"]
    assert (cl.result_count, cl.paginator.count_kind) == (1, "exact")
    assert "1 pending upload<" in response.content.decode().replace("</span>", "<")


def test_pages_stop_at_100(admin_client: Client, big_table: int) -> None:
    response = admin_client.get(CHANGELIST, {"p": 100})
    assert response.status_code == 200
    assert response.context["cl"].paginator.num_pages == 100
    assert len(response.context["cl"].result_list) == 100
    assert "the first 100 pages" in response.content.decode()
    # Past the last page the admin redirects to the first with its error flag.
    beyond = admin_client.get(CHANGELIST, {"p": 101})
    assert beyond.status_code == 302
    assert beyond["Location"].endswith("?e=1")


def rows_read_from_pending_uploads(sql: str) -> int:
    """Rows that the plan of ``sql`` actually read from pending_uploads, per EXPLAIN ANALYZE."""
    ((plan,),) = run_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    document = json.loads(plan) if isinstance(plan, str) else plan
    total = 0
    nodes = [document[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == "pending_uploads":
            total += int(node["Actual Rows"] * node["Actual Loops"])
        nodes.extend(node.get("Plans", []))
    return total


def test_unfiltered_list_does_not_read_the_whole_table(
    admin_client: Client, big_table: int
) -> None:
    """A page of 100 rows must not scan every row: at 1M rows each such scan costs seconds.

    This covers the page's rows (ORDER BY created_at, file_id LIMIT 100) and the
    date_hierarchy's own queries (MIN/MAX and the distinct days of created_at).
    """
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(CHANGELIST).status_code == 200
    selects = pending_upload_selects(captured)
    assert selects
    reads = {sql: rows_read_from_pending_uploads(sql) for sql in selects}
    whole_table_reads = [f"{rows} rows: {sql}" for sql, rows in reads.items() if rows > 1_000]
    assert not whole_table_reads, "\n".join(whole_table_reads)


def test_small_table_is_counted_exactly(admin_client: Client) -> None:
    for _ in range(3):
        make_upload()
    response = admin_client.get(CHANGELIST)
    assert response.context["cl"].result_count == 3
    assert response.context["cl"].paginator.count_kind == "exact"


# --- Sweep now --------------------------------------------------------------------------------


def backdate_ack(row: PendingUpload, ago: timedelta) -> None:
    PendingUpload.objects.filter(pk=row.pk).update(acked_at=timezone.now() - ago)


def test_sweep_button_is_on_the_list(admin_client: Client) -> None:
    html = admin_client.get(CHANGELIST).content.decode()
    assert re.search(rf'<form method="post" action="{re.escape(SWEEP)}"', html)
    assert "Sweep now" in html


def test_sweep_now_deletes_eligible_rows_and_reports_counts(admin_client: Client) -> None:
    old_acked = [make_upload("acked") for _ in range(2)]
    for row in old_acked:
        backdate_ack(row, timedelta(hours=2))
    expired = make_upload("expired")
    recent_acked = make_upload("acked")
    backdate_ack(recent_acked, timedelta(minutes=5))
    pending = make_upload("pending")
    fetched = make_upload("fetched")

    response = admin_client.post(SWEEP, follow=True)

    assert response.redirect_chain == [(CHANGELIST, 302)]
    texts = [str(message) for message in response.context["messages"]]
    assert len(texts) == 2
    assert re.fullmatch(r"Swept 2 acked and 1 expired uploads in \d+ ms\.", texts[0]), texts
    # What it left alone, and when each kind next becomes sweepable (1 h retention, 24 h TTL).
    assert texts[1] == (
        "Left alone: 1 acked row is still within the 1 h retention (the next is due in "
        "55 min); 2 unacked rows have not expired (the next expires in 1 d)."
    )
    remaining = set(PendingUpload.objects.values_list("file_id", flat=True))
    assert remaining == {recent_acked.file_id, pending.file_id, fetched.file_id}
    assert expired.file_id not in remaining


def test_sweep_now_with_nothing_eligible(admin_client: Client) -> None:
    kept = make_upload("pending")
    response = admin_client.post(SWEEP, follow=True)
    texts = [str(message) for message in response.context["messages"]]
    assert len(texts) == 2
    assert texts[0].startswith("Swept 0 acked and 0 expired uploads in ")
    assert texts[1] == (
        "Left alone: no acked rows within the 1 h retention; 1 unacked row has not expired "
        "(the next expires in 1 d)."
    )
    assert PendingUpload.objects.filter(pk=kept.pk).exists()


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(minutes=30))
def test_sweep_now_on_an_empty_table_says_nothing_is_waiting(admin_client: Client) -> None:
    response = admin_client.post(SWEEP, follow=True)
    texts = [str(message) for message in response.context["messages"]]
    assert texts[1] == (
        "Left alone: no acked rows within the 30 min retention; no unacked rows waiting."
    )


def test_sweep_now_caps_what_it_counts(admin_client: Client, big_table: int) -> None:
    response = admin_client.post(SWEEP, follow=True)
    texts = [str(message) for message in response.context["messages"]]
    assert "; 10,000+ unacked rows have not expired (the next expires in 1 d)." in texts[1]


def test_sweep_now_refuses_get(admin_client: Client) -> None:
    make_upload("expired")
    assert admin_client.get(SWEEP).status_code == 405
    assert PendingUpload.objects.count() == 1


def test_sweep_now_refused_to_anonymous_and_non_staff(non_staff_client: Client) -> None:
    make_upload("expired")
    for client in (Client(), non_staff_client):
        assert is_login_redirect(client.post(SWEEP))
    assert PendingUpload.objects.count() == 1


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    """Staff that may view pending uploads, and nothing more."""
    return staff_client(django_user_model, "viewer", "view_pendingupload")


def test_sweep_now_needs_the_delete_permission(viewer_client: Client, django_user_model) -> None:
    make_upload("expired")

    response = viewer_client.post(SWEEP, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "You may not delete pending uploads, so you may not sweep."
    ]
    assert PendingUpload.objects.count() == 1
    assert "Sweep now" not in viewer_client.get(CHANGELIST).content.decode()

    viewer = django_user_model.objects.get(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="delete_pendingupload"))
    assert viewer_client.post(SWEEP).status_code == 302
    assert PendingUpload.objects.count() == 0
