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


# Upstream's since_secs ceiling: older activity has typically been pruned anyway.
ACTIVITY_MAX_SINCE_SECONDS = 30 * 24 * 3600

# The operator bearer token accepted on every /workspaces/<id>/ route; '' disables it.
admin_token = setting("ADMIN_TOKEN", "")

# The same horizon as the activity feed's since_secs cap.
DEFAULT_ACTIVITY_RETENTION = timedelta(seconds=ACTIVITY_MAX_SINCE_SECONDS)
DEFAULT_ACTIVITY_SWEEP_INTERVAL = timedelta(hours=1)
DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE = 5000

activity_retention = setting("ACTIVITY_RETENTION", DEFAULT_ACTIVITY_RETENTION)
activity_sweep_interval = setting("ACTIVITY_SWEEP_INTERVAL", DEFAULT_ACTIVITY_SWEEP_INTERVAL)
activity_sweep_batch_size = setting("ACTIVITY_SWEEP_BATCH_SIZE", DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE)
