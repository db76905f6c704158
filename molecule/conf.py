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
