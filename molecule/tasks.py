"""django-q2 entry points; each calls one service."""

import logging
from typing import Any

from molecule import housekeeping
from molecule.jobs import job_run
from molecule.pruning import PruneError
from molecule.retention import ActivitySweepError
from molecule.services.activity_sweep import activity_count_error, activity_sweep

logger = logging.getLogger(__name__)


def sweep_activity() -> dict[str, Any]:
    return job_run(activity_sweep, ActivitySweepError, activity_count_error, logger)


def prune_workspaces() -> dict[str, Any]:
    return job_run(
        housekeeping.workspaces_prune,
        PruneError,
        housekeeping.workspaces_prune_count_error,
        logger,
    )
