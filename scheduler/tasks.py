"""django-q2 entry points; each calls one service."""

import logging
from typing import Any

from molecule.jobs import job_run
from scheduler import services

logger = logging.getLogger(__name__)


def _counts(report: services.PhantomBusyReport) -> dict[str, Any]:
    return {"reset": len(report.workspaces)}


def sweep_phantom_busy() -> dict[str, Any]:
    return job_run(
        services.workspaces_reset_phantom_busy,
        _counts,
        counted=services.PhantomBusySweepError,
        count_error=services.phantom_busy_count_error,
        name="phantom-busy sweep",
        logger=logger,
    )
