"""django-q2 entry points; each calls one service."""

from typing import Any

from scheduler.services import phantom_busy_sweep_job


def sweep_phantom_busy() -> dict[str, Any]:
    return phantom_busy_sweep_job()
