"""django-q2 entry points; each calls one service."""

import logging
from typing import Any

from molecule.jobs import job_run
from scheduler import services

logger = logging.getLogger(__name__)


def sweep_phantom_busy() -> dict[str, Any]:
    return job_run(
        services.workspaces_reset_phantom_busy,
        services.PhantomBusySweepError,
        services.phantom_busy_count_error,
        logger,
    )
