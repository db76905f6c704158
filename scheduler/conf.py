"""Scheduler settings with their defaults, read at call time."""

from datetime import timedelta

from molecule.conf import setting

DEFAULT_PHANTOM_BUSY_STALE_AFTER = timedelta(minutes=10)
DEFAULT_PHANTOM_BUSY_SWEEP_INTERVAL = timedelta(minutes=5)

phantom_busy_stale_after = setting("PHANTOM_BUSY_STALE_AFTER", DEFAULT_PHANTOM_BUSY_STALE_AFTER)
phantom_busy_sweep_interval = setting(
    "PHANTOM_BUSY_SWEEP_INTERVAL", DEFAULT_PHANTOM_BUSY_SWEEP_INTERVAL
)
# PHANTOM_BUSY_SWEEPER_DISABLED=1 (upstream's switch): the job is not scheduled at all.
phantom_busy_sweep_disabled = setting("PHANTOM_BUSY_SWEEP_DISABLED", False)
