"""Metrics of the phantom-busy sweep, stored in metric_totals (see molecule.metrics)."""

from molecule.metrics import stored_metric

phantom_busy_resets = stored_metric(
    "molecule_phantom_busy_resets",
    "Workspace rows whose active_tasks the phantom-busy sweep cleared after the stale threshold "
    "of activity silence. A rise means agents die mid-task without decrementing active_tasks: "
    "a regression in task-lifecycle accounting upstream. Stored in the database: every target "
    "exports the same total, aggregate with max.",
    "counter",
)

phantom_busy_sweep_errors = stored_metric(
    "molecule_phantom_busy_sweep_errors",
    "Phantom-busy sweep runs that failed; any rise means busy workspaces are no longer reset.",
    "counter",
)

workspaces_active = stored_metric(
    "molecule_workspaces_active",
    "Workspaces not removed, as of the last phantom-busy sweep (0 before the first); the base "
    "that phantom-busy resets are compared against.",
    "gauge",
)
