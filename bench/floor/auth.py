"""Authentication as the service does it: every token tier compared, in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from typing import Any

from bench.floor.wire import Answer, connection
from molecule.managers import CREDENTIALS_SQL

_ABSENT_HASH = "0" * 64


def authenticated(environ: dict[str, Any], stored: str | None, previous: str | None) -> bool:
    """The service's rule: every tier (the token, the one a rotation replaced, the operator's)
    compared every time, in constant time."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Answer("401 Unauthorized")
    digest = hashlib.sha256(token.encode()).hexdigest()
    admin = os.environ.get("ADMIN_TOKEN", "")
    own = hmac.compare_digest(digest, stored or _ABSENT_HASH)
    old = hmac.compare_digest(digest, previous or _ABSENT_HASH)
    operator = hmac.compare_digest(
        digest, hashlib.sha256(admin.encode()).hexdigest() if admin else _ABSENT_HASH
    )
    return own or old or operator


def admitted(environ: dict[str, Any], found: Any) -> None:
    """401 unless the token opens the workspace (id, status, delivery_mode, token_hash, the
    live previous token's hash)."""
    usable = found is not None and found[0] is not None and found[1] != "removed"
    stored, previous = (found[3], found[4]) if usable else (None, None)
    if not authenticated(environ, stored, previous) or not usable:
        raise Answer("401 Unauthorized")


def credentials(environ: dict[str, Any], workspace: uuid.UUID) -> tuple[Any, ...]:
    params = {"workspace_id": workspace}
    found = connection().execute(CREDENTIALS_SQL, params, binary=True).fetchone()
    admitted(environ, found)
    return found
