"""django-q2 entry points; each calls one service."""

import logging
from typing import Any

from molecule.jobs import job_run
from pending_uploads import services
from pending_uploads.managers import SweepError

logger = logging.getLogger(__name__)


def sweep_pending_uploads() -> dict[str, Any]:
    return job_run(services.uploads_sweep, SweepError, services.uploads_count_error, logger)
