"""What every route shares: the thread's connection, the JSON encoding and the early answer."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import psycopg

_local = threading.local()
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class Answer(Exception):
    def __init__(self, status: str, body: bytes = b"") -> None:
        self.status = status
        self.body = body


def connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        # prepare_threshold=0: every statement is prepared on its first execution.
        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=0)
        _local.conn = conn
    return conn


def encode(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES).encode()
