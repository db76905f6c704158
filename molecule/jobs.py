"""The never-raise wrapper every scheduled job runs its service through."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from django.db import close_old_connections


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
