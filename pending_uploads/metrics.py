"""Prometheus metrics of the pending-uploads sweeper. Series are created at import, at zero."""

from prometheus_client import Counter, Gauge, Histogram

SWEEP_OUTCOMES = ("acked", "expired", "error")
BACKLOG_STATES = ("pending", "fetched", "acked")

uploads_swept = Counter(
    "molecule_pending_uploads_swept",
    "Pending-upload rows deleted by the sweeper, by outcome: acked (fetched, acked and past "
    "retention: healthy churn) or expired (never acked before expires_at: workspaces are not "
    "fetching); error counts failed sweep runs. A rising expired or error rate needs attention.",
    ["outcome"],
)
for _outcome in SWEEP_OUTCOMES:
    uploads_swept.labels(outcome=_outcome)

backlog_rows = Gauge(
    "molecule_pending_uploads_rows",
    "Rows in pending_uploads after the last sweep, by state: pending (never fetched), fetched "
    "(not yet acked) and acked (awaiting the sweep). Steady growth means uploads are not drained.",
    ["state"],
    multiprocess_mode="mostrecent",
)

oldest_unacked_age = Gauge(
    "molecule_pending_uploads_oldest_unacked_age_seconds",
    "Age of the oldest unacked pending upload at the last sweep; near the TTL means a workspace "
    "is not fetching its files.",
    multiprocess_mode="mostrecent",
)

last_sweep_timestamp = Gauge(
    "molecule_pending_uploads_last_sweep_timestamp_seconds",
    "Unix time of the last successful pending-uploads sweep; falling behind means the sweeper "
    "is not running.",
    multiprocess_mode="max",
)

sweep_duration = Histogram(
    "molecule_pending_uploads_sweep_duration_seconds",
    "Time spent in the pending-uploads sweep statements per run; a rise means a growing backlog "
    "or a slow database.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
