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


# A statement running longer than this is cancelled by PostgreSQL (sqlstate 57014).
DEFAULT_STATEMENT_TIMEOUT = timedelta(seconds=30)

# Upstream's since_secs ceiling: older activity has typically been pruned anyway.
ACTIVITY_MAX_SINCE_SECONDS = 30 * 24 * 3600

# The operator bearer token accepted on every /workspaces/<id>/ route; '' disables it.
admin_token = setting("ADMIN_TOKEN", "")

# The platform whose /registry/discover/<id> serves agent cards, for the feed's
# agent_card_url; '' (the default) leaves agent_card_url out, as this service serves none.
external_platform_url = setting("EXTERNAL_PLATFORM_URL", "")

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
