"""The never-raise wrapper every scheduled job runs its service through, and failure counts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from django.db import DatabaseError, close_old_connections

from molecule.errors import first_line


class JobReport(Protocol):
    def job_result(self) -> dict[str, Any]: ...


def job_run(
    service: Callable[[], JobReport],
    counted: type[Exception],
    count_error: Callable[[], None],
    logger: logging.Logger,
) -> dict[str, Any]:
    """Run ``service`` and return its report's ``job_result()``, or ``{"error": ...}``.

    Never raises, so a failure cannot stop the worker. The service counts the failures it
    raises as ``counted``; anything else is counted here through ``count_error``.
    """
    try:
        report = service()
    except Exception as exc:
        if not isinstance(exc, counted):
            count_error()
        logger.exception("scheduled %s failed; the next run will retry", service.__name__)
        # Drop a connection the failure may have broken, so the next run starts clean.
        close_old_connections()
        return {"error": str(exc)}
    return report.job_result()


def failure_count(metric: str, label: str, what: str) -> None:
    """Add 1 to ``metric{label}`` in its own statement, for a failed ``what`` run.

    The failed batch rolled back with its own count, so the failure is counted after it. When
    the database itself is away this cannot be stored either: one line is logged instead (a
    command that failed because the database is away must print one line).
    """
    from molecule.models import MetricTotal

    try:
        MetricTotal.objects.add(metric, label=label)
    except DatabaseError as exc:
        logging.getLogger(__name__).error(
            "could not count the failed %s: %s", what, first_line(exc)
        )
