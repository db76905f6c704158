"""django-q2 entry points; each calls one service."""

from typing import Any

from pending_uploads.services import uploads_sweep_job


def sweep_pending_uploads() -> dict[str, Any]:
    return uploads_sweep_job()
