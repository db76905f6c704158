"""django-q2 entry points; each calls one service."""

import logging
from typing import Any

from molecule import housekeeping, services
from molecule.jobs import job_run
from molecule.pruning import PruneError
from molecule.retention import ActivitySweepError

logger = logging.getLogger(__name__)


def sweep_activity() -> dict[str, Any]:
    return job_run(
        services.activity_sweep, ActivitySweepError, services.activity_count_error, logger
    )


def prune_workspaces() -> dict[str, Any]:
    return job_run(
        housekeeping.workspaces_prune,
        PruneError,
        housekeeping.workspaces_prune_count_error,
        logger,
    )
