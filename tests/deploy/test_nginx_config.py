"""The shipped nginx config against the limits it must agree with: gunicorn's and the app's."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from devtools.processes.nginx import SITE_CONF
from pending_uploads import conf

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
# The app's JSON body cap (MOLECULE_MAX_JSON_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE).
APP_JSON_BYTES = 1024 * 1024
# The shortest header line nginx passes on: a one-letter name, a colon and CRLF.
SHORTEST_HEADER_LINE = 4


def directive(name: str) -> list[str]:
    """The arguments of every ``name`` directive in the shipped config, in order."""
    return re.findall(rf"^\s*{name}\s+([^;]+);", SITE_CONF.read_text(), re.MULTILINE)


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([km]?)", text.strip()).groups()
    return int(number) * SIZE_UNITS[unit]


@pytest.fixture(scope="module")
def gunicorn_conf() -> dict:
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_takes_every_request_head_nginx_passes_on(gunicorn_conf: dict) -> None:
    # nginx refuses a longer line or larger headers with JSON; gunicorn would answer in HTML.
    (buffers,) = directive("large_client_header_buffers")
    count, buffer = buffers.split()
    line = size(buffer)

    # A request line fills one buffer with its CRLF; nginx forwards it no longer.
    assert gunicorn_conf["limit_request_line"] >= line - 2
    # A header line fills one buffer; nginx may add to one (X-Forwarded-For) but not double it.
    assert gunicorn_conf["limit_request_field_size"] >= 2 * line
    assert gunicorn_conf["limit_request_fields"] >= int(count) * line // SHORTEST_HEADER_LINE


def test_nginx_holds_the_largest_file_and_body_the_app_accepts() -> None:
    (temp_file,) = directive("proxy_max_temp_file_size")
    server_body, upload_body = directive("client_max_body_size")[:2]

    # A whole download waits in nginx's temporary file, never in a gunicorn thread.
    assert size(temp_file) >= conf.max_file_bytes()
    # Every body the app would take passes nginx, a file of exactly the per-file cap with its
    # multipart envelope included; the app answers its own 413 up to there, nginx beyond.
    assert size(upload_body) == conf.max_request_bytes() > conf.max_file_bytes()
    assert size(server_body) == APP_JSON_BYTES


def test_the_apps_own_errors_are_never_intercepted() -> None:
    # error_page would otherwise replace the app's JSON 400/404/413 with nginx's.
    assert directive("proxy_intercept_errors") == []
    assert directive("proxy_buffering") == ["on"]
