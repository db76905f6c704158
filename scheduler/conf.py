"""Scheduler settings with their defaults, read at call time."""

from datetime import timedelta

from django.conf import settings

DEFAULT_PHANTOM_BUSY_STALE_AFTER = timedelta(minutes=10)
DEFAULT_PHANTOM_BUSY_SWEEP_INTERVAL = timedelta(minutes=5)


def phantom_busy_stale_after() -> timedelta:
    return getattr(settings, "PHANTOM_BUSY_STALE_AFTER", DEFAULT_PHANTOM_BUSY_STALE_AFTER)


def phantom_busy_sweep_interval() -> timedelta:
    return getattr(settings, "PHANTOM_BUSY_SWEEP_INTERVAL", DEFAULT_PHANTOM_BUSY_SWEEP_INTERVAL)


def phantom_busy_sweep_disabled() -> bool:
    # PHANTOM_BUSY_SWEEPER_DISABLED=1 (upstream's switch): the job is not scheduled at all.
    return getattr(settings, "PHANTOM_BUSY_SWEEP_DISABLED", False)
