"""Platform-core settings with their defaults, read at call time."""

from datetime import timedelta

from django.conf import settings


def activity_retention() -> timedelta:
    # The same horizon as the activity feed's since_secs cap.
    return getattr(settings, "ACTIVITY_RETENTION", timedelta(days=30))


def activity_sweep_interval() -> timedelta:
    return getattr(settings, "ACTIVITY_SWEEP_INTERVAL", timedelta(hours=1))


def activity_sweep_batch_size() -> int:
    return getattr(settings, "ACTIVITY_SWEEP_BATCH_SIZE", 5000)
