"""Filename and mimetype sanitizing: the issue's tables, plus hypothesis properties."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pending_uploads.sanitize import sanitize_filename, sanitize_mimetype

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
SAFE_MIMETYPE = re.compile(r"[^/\s]+/[^/\s]+")
OCTET = "application/octet-stream"
# RFC 7230 token characters that the sanitizer keeps in a type or subtype.
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # basename only, whatever the separator
        ("report.pdf", "report.pdf"),
        ("dir/report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x", "x"),
        ("C:\\Users\\me\\doc.txt", "doc.txt"),
        ("/abs/path/", "file"),
        # spaces and everything outside [A-Za-z0-9._-] become _
        ("a b.txt", "a_b.txt"),
        ("  lead.txt", "__lead.txt"),
        ("résumé.pdf", "r_sum_.pdf"),
        ("文件.txt", "__.txt"),
        ("a\x00b", "a_b"),
        ("a\r\nb.txt", "a__b.txt"),
        ('x".txt', "x_.txt"),
        ("x'; DROP TABLE pending_uploads;--", "x___DROP_TABLE_pending_uploads_--"),
        ("keep-._ok", "keep-._ok"),
        # the empty name and the dot names
        ("", "file"),
        (None, "file"),
        (".", "file"),
        ("..", "file"),
        ("a/..", "file"),
        ("a\\.", "file"),
        ("...", "..."),
        (".hidden", ".hidden"),
        # at most 100 characters, keeping an extension of up to 16
        ("n" * 100, "n" * 100),
        ("n" * 101, "n" * 100),
        ("n" * 300 + ".txt", "n" * 96 + ".txt"),
        ("n" * 300 + "." + "e" * 16, "n" * 83 + "." + "e" * 16),
        ("n" * 300 + "." + "e" * 17, "n" * 100),
        ("a.b" * 50, ("a.b" * 50)[:98] + ".b"),
        ("." + "e" * 150, "." + "e" * 99),
        ("é" * 120 + ".png", "_" * 96 + ".png"),
    ],
)
def test_sanitize_filename(raw, expected):
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("text/plain", "text/plain"),
        ("image/svg+xml", "image/svg+xml"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
        # parameters dropped, case folded
        ("text/plain; charset=utf-8", "text/plain"),
        ("text/plain;charset=utf-8;format=flowed", "text/plain"),
        ("TEXT/HTML", "text/html"),
        ("Application/JSON; Charset=UTF-8", "application/json"),
        # not type/subtype
        ("", OCTET),
        (None, OCTET),
        ("text", OCTET),
        ("text/", OCTET),
        ("/plain", OCTET),
        ("text/plain/extra", OCTET),
        ("text//plain", OCTET),
        (";text/plain", OCTET),
        # control characters or whitespace inside
        ("text/html\r\nX-Evil: 1", OCTET),
        ("text/html\nX: 1", OCTET),
        ("text/\x00html", OCTET),
        ("text/ html", OCTET),
        ("text /html", OCTET),
        ("text/\thtml", OCTET),
        ("text/html\x7f", OCTET),
        ("text/html\u00a0", OCTET),
        ("tëxt/plain", OCTET),
        ("text/plain'; DROP TABLE x;--", OCTET),
    ],
)
def test_sanitize_mimetype(raw, expected):
    assert sanitize_mimetype(raw) == expected


def has_control_or_space(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" or char.isspace() for char in text)


@given(st.text(max_size=400))
@example("")
@example(".")
@example("..")
@example("/..")
@example("\\.")
@example("x/" + "." * 2)
@example("n" * 99 + "." + "e" * 16)
@example("\x00\r\n")
def test_any_filename_becomes_a_safe_basename(raw):
    name = sanitize_filename(raw)

    assert SAFE_NAME.fullmatch(name), name
    assert name not in (".", "..")


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=300))
def test_ascii_filenames_keep_their_allowed_characters(raw):
    # Sanitizing is a substitution, not a rewrite: short names keep their safe characters.
    basename = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = sanitize_filename(raw)
    if basename not in ("", ".", "..") and len(basename) <= 100:
        assert name == re.sub(r"[^A-Za-z0-9._-]", "_", basename)


@given(st.text(max_size=200))
@example("text/html\r\n")
@example(" text/plain")
@example("a/b\u2028")
@example("a/b\x85")
def test_any_content_type_becomes_a_clean_mimetype(raw):
    mimetype = sanitize_mimetype(raw)

    assert not has_control_or_space(mimetype), repr(mimetype)
    assert SAFE_MIMETYPE.fullmatch(mimetype), repr(mimetype)
    assert mimetype == mimetype.lower()


@given(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=40),
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=40),
    st.text(max_size=60),
)
def test_well_formed_types_keep_their_essence(kind, subtype, parameters):
    raw = f"{kind}/{subtype};{parameters}"

    assert sanitize_mimetype(raw) == f"{kind}/{subtype}".lower()
