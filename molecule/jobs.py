"""The never-raise wrapper every scheduled job runs its service through."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections

Report = TypeVar("Report")


def job_run(
    service: Callable[[], Report],
    summary: Callable[[Report], dict[str, Any]],
    *,
    counted: type[Exception],
    count_error: Callable[[], None],
    name: str,
    logger: logging.Logger,
) -> dict[str, Any]:
    """Run ``service`` and return ``summary(report)``, or ``{"error": ...}``; never raise.

    A failure cannot stop the worker. The service counts the failures it raises as
    ``counted``; anything else is counted here through ``count_error``.
    """
    try:
        report = service()
    except Exception as exc:
        if not isinstance(exc, counted):
            count_error()
        logger.exception("scheduled %s failed; the next run will retry", name)
        # Drop a connection the failure may have broken, so the next run starts clean.
        close_old_connections()
        return {"error": str(exc)}
    return summary(report)
