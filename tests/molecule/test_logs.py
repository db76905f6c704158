"""One log record is one line, whatever a user puts in a name, filename or summary."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.test import Client

from molecule.logs import EscapeControlCharsFilter, escape_control


@pytest.fixture
def stderr_lines():
    """The lines the configured stderr handler writes, captured for the test."""
    [handler] = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, EscapeControlCharsFilter) for f in handler.filters)
    ]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: buffer.getvalue().splitlines()
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
def test_a_newline_forged_workspace_name_makes_one_log_line(stderr_lines):
    forged = "agent\n2026-01-01 00:00:00,000 INFO molecule.services workspace re-registered id=x"
    body = {"id": str(uuid.uuid4()), "delivery_mode": "poll", "agent_card": {"name": forged}}

    response = Client().post(
        "/registry/register", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 200
    lines = [line for line in stderr_lines() if "molecule.services.workspaces" in line]
    assert len(lines) == 1
    assert "workspace registered" in lines[0]
    assert "name=agent\\n2026-01-01" in lines[0]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("esc\x1b[31m", "esc\\x1b[31m"),
        ("nel\x85", "nel\\x85"),
        ("sep\u2028", "sep\\u2028"),
        ("tab\t", "tab\\t"),
        ("été", "été"),
    ],
)
def test_escape_control(value, escaped):
    assert escape_control(value) == escaped


def test_the_filter_escapes_arguments_and_keeps_numbers():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%d f=%.1f s=%s e=%s", None, None)
    record.args = (3, 1.5, "a\nb", ValueError("bad\nline"))

    assert EscapeControlCharsFilter().filter(record) is True
    assert record.getMessage() == "n=3 f=1.5 s=a\\nb e=bad\\nline"


def test_the_filter_escapes_mapping_arguments_and_bare_messages():
    mapped = logging.LogRecord("x", logging.INFO, __file__, 1, "%(name)s", None, None)
    mapped.args = {"name": "a\nb"}
    bare = logging.LogRecord("x", logging.INFO, __file__, 1, "one\ntwo", None, None)

    EscapeControlCharsFilter().filter(mapped)
    EscapeControlCharsFilter().filter(bare)

    assert (mapped.getMessage(), bare.getMessage()) == ("a\\nb", "one\\ntwo")
