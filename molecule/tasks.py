"""django-q2 entry points; each calls one service."""

from typing import Any

from molecule.services import activity_sweep_job


def sweep_activity() -> dict[str, Any]:
    return activity_sweep_job()
