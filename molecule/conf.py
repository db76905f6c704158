"""Platform settings with their defaults, read at call time."""

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")


def setting(name: str, default: T) -> Callable[[], T]:
    """A getter of ``settings.<name>`` with its default, read at call time (override_settings)."""

    def read() -> T:
        return getattr(settings, name, default)

    read.__name__ = read.__qualname__ = name.lower()
    read.__doc__ = f"settings.{name}, default {default!r}."
    return read


# A web process cuts a connection whose operation waited this long for PostgreSQL
# (molecule.dbdeadline): a frozen database answers every request with a 503 within 10 s, a
# reused connection's after this, a new one's after the 5 s connect_timeout. 0 disables it.
db_client_timeout = setting("DB_CLIENT_TIMEOUT", timedelta(seconds=8))

# Upstream's since_secs ceiling: older activity has typically been pruned anyway.
ACTIVITY_MAX_SINCE_SECONDS = 30 * 24 * 3600

# The operator bearer token accepted on every /workspaces/<id>/ route; '' disables it.
admin_token = setting("ADMIN_TOKEN", "")

# The platform whose /registry/discover/<id> serves agent cards, for the feed's
# agent_card_url; '' (the default) leaves agent_card_url out, as this service serves none.
external_platform_url = setting("EXTERNAL_PLATFORM_URL", "")

# Peers whose X-Forwarded-For is believed: the shipped nginx, on the same host as gunicorn.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")
trusted_proxies = setting("TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES)

# The hard horizon: every activity row goes after it, acknowledged or not. The same as the
# feed's since_secs cap.
DEFAULT_ACTIVITY_RETENTION = timedelta(seconds=ACTIVITY_MAX_SINCE_SECONDS)
# The soft horizon (upstream's 7 days): rows the workspace's poller has acknowledged go after it.
DEFAULT_ACTIVITY_SOFT_RETENTION = timedelta(days=7)
DEFAULT_ACTIVITY_SWEEP_INTERVAL = timedelta(hours=1)
DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE = 5000

activity_retention = setting("ACTIVITY_RETENTION", DEFAULT_ACTIVITY_RETENTION)
activity_soft_retention = setting("ACTIVITY_SOFT_RETENTION", DEFAULT_ACTIVITY_SOFT_RETENTION)
activity_sweep_interval = setting("ACTIVITY_SWEEP_INTERVAL", DEFAULT_ACTIVITY_SWEEP_INTERVAL)
activity_sweep_batch_size = setting("ACTIVITY_SWEEP_BATCH_SIZE", DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE)

# The address guard's switches, upstream's names and meanings (molecule/addresses.py).
# MOLECULE_ENV "development" or "dev" (any case) allows loopback and private workspace URLs;
# it is its own switch, never DEBUG. MOLECULE_DEPLOY_MODE "saas" (or, when it is unset, a
# non-empty MOLECULE_ORG_ID) allows private ones: RFC 1918 and fd00::/8.
molecule_env = setting("MOLECULE_ENV", "")
deploy_mode = setting("MOLECULE_DEPLOY_MODE", "")
org_id = setting("MOLECULE_ORG_ID", "")

# Per-workspace quotas (molecule.quotas), far above what a working agent does (README: quotas);
# 0 switches one off. Uploads and activity are counted in fixed windows of QUOTA_WINDOW.
DEFAULT_QUOTA_PENDING_BYTES = 5 * 1024**3
DEFAULT_QUOTA_ACTIVITY_BYTES = 256 * 1024**2
DEFAULT_QUOTA_UPLOADS = 1000
DEFAULT_QUOTA_WINDOW = timedelta(hours=1)

quota_pending_bytes = setting("QUOTA_PENDING_BYTES", DEFAULT_QUOTA_PENDING_BYTES)
quota_activity_bytes = setting("QUOTA_ACTIVITY_BYTES", DEFAULT_QUOTA_ACTIVITY_BYTES)
quota_uploads = setting("QUOTA_UPLOADS", DEFAULT_QUOTA_UPLOADS)
quota_window = setting("QUOTA_WINDOW", DEFAULT_QUOTA_WINDOW)

# Workspaces that registered and never came back (molecule.pruning): silent this long, with no
# activity and no pending uploads, they are deleted. The activity retention by default, so
# a pruned workspace has nothing left in the feed either.
DEFAULT_WORKSPACE_PRUNE_AFTER = DEFAULT_ACTIVITY_RETENTION
DEFAULT_WORKSPACE_PRUNE_INTERVAL = timedelta(hours=1)
DEFAULT_WORKSPACE_PRUNE_BATCH_SIZE = 500

workspace_prune_after = setting("WORKSPACE_PRUNE_AFTER", DEFAULT_WORKSPACE_PRUNE_AFTER)
workspace_prune_interval = setting("WORKSPACE_PRUNE_INTERVAL", DEFAULT_WORKSPACE_PRUNE_INTERVAL)
workspace_prune_batch_size = setting(
    "WORKSPACE_PRUNE_BATCH_SIZE", DEFAULT_WORKSPACE_PRUNE_BATCH_SIZE
)

# After POST /workspaces/<id>/token/rotate, the old token still works until the new one is
# first used, or for this long at most.
DEFAULT_TOKEN_ROTATION_OVERLAP = timedelta(minutes=15)
token_rotation_overlap = setting("TOKEN_ROTATION_OVERLAP", DEFAULT_TOKEN_ROTATION_OVERLAP)
