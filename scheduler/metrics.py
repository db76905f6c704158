"""Prometheus metrics of the phantom-busy sweep. Created at import, so they show 0 at start."""

from prometheus_client import Counter, Gauge

phantom_busy_resets = Counter(
    "molecule_phantom_busy_resets",
    "Workspace rows whose active_tasks the phantom-busy sweep cleared after the stale threshold "
    "of activity silence. A rise means agents die mid-task without decrementing active_tasks: "
    "a regression in task-lifecycle accounting upstream.",
)

phantom_busy_sweep_errors = Counter(
    "molecule_phantom_busy_sweep_errors",
    "Phantom-busy sweep runs that failed; any rise means busy workspaces are no longer reset.",
)

workspaces_active = Gauge(
    "molecule_workspaces_active",
    "Workspaces not removed, as of the last phantom-busy sweep; the base that phantom-busy "
    "resets are compared against.",
    multiprocess_mode="mostrecent",
)
