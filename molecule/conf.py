"""Platform settings with their defaults, read at call time."""

from datetime import timedelta

from django.conf import settings

# A statement running longer than this is cancelled by PostgreSQL (sqlstate 57014).
DEFAULT_STATEMENT_TIMEOUT = timedelta(seconds=30)

# Upstream's since_secs ceiling: older activity has typically been pruned anyway.
ACTIVITY_MAX_SINCE_SECONDS = 30 * 24 * 3600


def admin_token() -> str:
    """The operator bearer token accepted on every /workspaces/<id>/ route; '' disables it."""
    return getattr(settings, "ADMIN_TOKEN", "")


# The same horizon as the activity feed's since_secs cap.
DEFAULT_ACTIVITY_RETENTION = timedelta(seconds=ACTIVITY_MAX_SINCE_SECONDS)
DEFAULT_ACTIVITY_SWEEP_INTERVAL = timedelta(hours=1)
DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE = 5000


def activity_retention() -> timedelta:
    return getattr(settings, "ACTIVITY_RETENTION", DEFAULT_ACTIVITY_RETENTION)


def activity_sweep_interval() -> timedelta:
    return getattr(settings, "ACTIVITY_SWEEP_INTERVAL", DEFAULT_ACTIVITY_SWEEP_INTERVAL)


def activity_sweep_batch_size() -> int:
    return getattr(settings, "ACTIVITY_SWEEP_BATCH_SIZE", DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE)
