"""The admin in headless Chromium: pending uploads (log in, list, open) and the task pages."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import django_q_task_rows, make_upload

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "admin-pending-uploads.png"
LONG_NAME = "pending-" + "x" * 88 + ".txt"
VIEWPORT = {"width": 1280, "height": 900}
# Every header cell inside the viewport, and nothing scrolls sideways.
OVERFLOW_JS = """() => {
  const results = document.querySelector('#changelist .results');
  const cells = [...document.querySelectorAll('#result_list thead th')];
  return {
    pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    resultsOverflow: results.scrollWidth - results.clientWidth,
    rightmost: Math.max(...cells.map(cell => cell.getBoundingClientRect().right)),
    width: window.innerWidth,
  };
}"""
USERNAME = "operator"
PASSWORD = "browser-test-Pa55word"


def require_browser() -> None:
    """Skip on a developer machine without Chromium or Playwright; fail in CI, which has both."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install -e '.[dev]')")
    if not missing:
        return
    reason = "admin browser test needs " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI is set, so the browser test must run")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium from /usr/bin, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any) -> Any:
    """A page of a fresh 1280 px context with the test's timeouts."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    return context.new_page()


def log_in(page: Any, url: str) -> None:
    """Open ``url`` anonymously, log in on the form the admin sends us to, land on ``url``."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page).to_have_url(re.compile(r"/admin/login/\?next="))
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")
    expect(page).to_have_url(url)


def assert_fits(fit: dict[str, float]) -> None:
    """Nothing scrolls sideways (OVERFLOW_JS): not the page, not the changelist in its box."""
    assert fit["pageOverflow"] <= 0, fit
    assert fit["resultsOverflow"] <= 0, fit
    assert fit["rightmost"] <= fit["width"], fit


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("1", pytest.fail.Exception)]
)
def test_missing_chromium_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(f"{__name__}.CHROMIUM", tmp_path / "no-chromium-here")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-chromium-here"):
        require_browser()


def test_admin_pending_uploads_in_chromium(live_server, django_user_model) -> None:
    require_browser()
    from playwright.sync_api import expect

    # All database work happens before Playwright starts: its sync API runs an event loop in
    # this thread, and Django refuses ORM calls from a thread with a running loop.
    django_user_model.objects.create_superuser(USERNAME, "operator@example.com", PASSWORD)
    contents = {
        # The longest filename the API stores (100 characters), to prove it wraps.
        LONG_NAME: ("pending", b"pending bytes"),
        "fetched.txt": ("fetched", b"fetched bytes"),
        "acked-one.txt": ("acked", b"first acked bytes"),
        "acked-two.txt": ("acked", b"second acked bytes"),
        "expired.txt": ("expired", b"expired bytes"),
    }
    rows = {
        name: make_upload(state, filename=name, content=content)
        for name, (state, content) in contents.items()
    }
    opened = rows["acked-two.txt"]
    # pytest-django's live server listens on "localhost"; Chromium treats http://localhost as
    # a secure context, so the Secure session and CSRF cookies (DEBUG off) are kept.
    base = live_server.url
    assert base.startswith("http://localhost:")
    changelist = f"{base}/admin/pending_uploads/pendingupload/"
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        page = new_page(browser)

        # Anonymous: the admin sends us to its login form.
        log_in(page, changelist)

        # The list, styled (a missing stylesheet leaves the header transparent).
        result_rows = page.locator("#result_list tbody tr")
        expect(result_rows).to_have_count(len(rows))
        header_color = page.eval_on_selector(
            "#header", "el => getComputedStyle(el).backgroundColor"
        )
        assert header_color not in ("", "transparent", "rgba(0, 0, 0, 0)")
        expect(page.locator("#sweep-now")).to_be_visible()
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        states = page.locator("#result_list tbody td.field-state").all_inner_texts()
        assert sorted(states) == ["acked", "acked", "expired", "fetched", "pending"]
        # Newest first: the rows were created in this order.
        names = page.locator("#result_list tbody td.field-filename").all_inner_texts()
        assert names == list(reversed(contents))
        # The header names the product.
        expect(page.locator("#site-name")).to_have_text("Molecule uploads administration")

        # Every column fits at 1280 px, the 100-character filename included.
        assert_fits(page.evaluate(OVERFLOW_JS))

        # UUIDs: short, monospace, the full value on hover.
        workspace_cell = page.locator("#result_list tbody td.field-workspace_link a.uuid").first
        newest = rows["expired.txt"]
        expect(workspace_cell).to_have_text(str(newest.workspace_id)[:8])
        expect(workspace_cell).to_have_attribute("title", str(newest.workspace_id))
        font = workspace_cell.evaluate("el => getComputedStyle(el).fontFamily")
        assert "monospace" in font, font
        # ... and in search: the workspace link lists that workspace's uploads.
        workspace_cell.click()
        expect(page).to_have_url(re.compile(rf"\?q={newest.workspace_id}$"))
        expect(result_rows).to_have_count(1)
        expect(page.locator("#searchbar")).to_have_value(str(newest.workspace_id))
        page.goto(changelist)

        # Filter by state through the sidebar link.
        filters = page.locator("#changelist-filter")
        filters.get_by_role("link", name="acked", exact=True).click()
        expect(page).to_have_url(re.compile(r"\?state=acked$"))
        expect(result_rows).to_have_count(2)
        names = page.locator("#result_list tbody td.field-filename").all_inner_texts()
        assert sorted(names) == ["acked-one.txt", "acked-two.txt"]

        # Open one row: its details, and the bytes only as a download.
        page.locator("#result_list tbody th.field-file a", has_text=str(opened.file_id)[:8]).click()
        expect(page).to_have_url(re.compile(rf"/pendingupload/{opened.file_id}/change/(\?|$)"))
        expect(page.locator(".field-filename .readonly")).to_have_text("acked-two.txt")
        expect(page.locator(".field-state .readonly")).to_have_text("acked")
        assert "second acked bytes" not in page.content()
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download acked-two.txt").click()
        download = download_info.value
        assert download.suggested_filename == "acked-two.txt"
        assert Path(download.path()).read_bytes() == b"second acked bytes"

    assert SCREENSHOT.stat().st_size > 10_000


# django-q2's task pages, which the runbooks send operators to.
TASK_PAGES = {
    "Scheduled tasks": "/admin/django_q/schedule/",
    "Successful tasks": "/admin/django_q/success/",
    "Failed tasks": "/admin/django_q/failure/",
    "Queued tasks": "/admin/django_q/ormq/",
}


def test_django_q_task_pages_fit_1280_px(live_server, django_user_model) -> None:
    require_browser()
    from playwright.sync_api import expect

    django_user_model.objects.create_superuser(USERNAME, "operator@example.com", PASSWORD)
    django_q_task_rows()
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        page = new_page(browser)
        log_in(page, f"{live_server.url}/admin/")
        fits = {}
        for title, path in TASK_PAGES.items():
            page.goto(f"{live_server.url}{path}")
            expect(page.locator("h1")).to_contain_text(title[:-1], ignore_case=True)
            expect(page.locator("#result_list tbody tr").first).to_be_visible()
            slug = path.strip("/").replace("/", "-")
            page.screenshot(path=str(ARTIFACTS / f"{slug}.png"), full_page=True)
            fits[title] = page.evaluate(OVERFLOW_JS)
    # Every page measured before the first failure, so a failure shows them all.
    for title in TASK_PAGES:
        assert_fits({"page": title, **fits[title], "all": fits})
