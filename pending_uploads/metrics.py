"""Metrics of the pending-uploads sweeper (stored in metric_totals) and of push-mode forwards."""

from prometheus_client import Counter, Histogram

from molecule.metrics import stored_metric

SWEEP_OUTCOMES = ("acked", "expired", "error")
BACKLOG_STATES = ("pending", "fetched", "acked")
SWEEP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

uploads_swept = stored_metric(
    "molecule_pending_uploads_swept",
    "Pending-upload rows deleted by the sweeper, by outcome: acked (fetched, acked and past "
    "retention: healthy churn) or expired (never acked before expires_at: workspaces are not "
    "fetching); error counts failed sweep runs. A rising expired or error rate needs attention. "
    "Stored in the database: every target exports the same total, aggregate with max.",
    "counter",
    label="outcome",
    label_values=SWEEP_OUTCOMES,
)

backlog_rows = stored_metric(
    "molecule_pending_uploads_rows",
    "Rows in pending_uploads after the last sweep, by state: pending (never fetched), fetched "
    "(not yet acked) and acked (awaiting the sweep); 0 before the first sweep. Steady growth "
    "means uploads are not drained.",
    "gauge",
    label="state",
    label_values=BACKLOG_STATES,
)

oldest_unacked_age = stored_metric(
    "molecule_pending_uploads_oldest_unacked_age_seconds",
    "Age of the oldest unacked pending upload at the last sweep; near the TTL means a workspace "
    "is not fetching its files.",
    "gauge",
)

last_sweep_timestamp = stored_metric(
    "molecule_pending_uploads_last_sweep_timestamp_seconds",
    "Unix time of the last successful pending-uploads sweep by any process, 0 if none ever "
    "succeeded; falling behind means the sweeper is not running.",
    "gauge",
)

sweep_duration = stored_metric(
    "molecule_pending_uploads_sweep_duration_seconds",
    "Time spent in the pending-uploads sweep statements per run; a rise means a growing backlog "
    "or a slow database.",
    "histogram",
    buckets=SWEEP_DURATION_BUCKETS,
)

objects_deleted = stored_metric(
    "molecule_pending_uploads_objects_deleted",
    "Bucket objects deleted after the sweep deleted their rows (drained from the outbox, counted "
    "in the statement that removes them from it). It follows the swept rows of bucket mode; "
    "flat while rows are swept means the drain is failing (see the pending gauge).",
    "counter",
)

object_delete_errors = stored_metric(
    "molecule_pending_uploads_object_delete_errors",
    "Per-key errors DeleteObjects reported while draining the outbox; each failed key stays "
    "queued and is tried again by the next sweep. A steady rise means the bucket refuses "
    "deletes (permissions, object lock).",
    "counter",
)

object_deletions_pending = stored_metric(
    "molecule_pending_uploads_object_deletions_pending",
    "Bucket objects whose rows are deleted and whose object delete is still queued in the "
    "outbox, at the last sweep. It should be 0 after every sweep; growth means the bucket is "
    "unreachable or refuses deletes, and the bucket holds bytes nothing will serve.",
    "gauge",
)

# --- Push mode: forwards to the workspace, counted in the web process that made them --------
# prometheus_client objects, not metric_totals rows: a forward is a request's work, like
# django-prometheus' request metrics, and /metrics sums them over gunicorn's workers through
# PROMETHEUS_MULTIPROC_DIR. apps.ready() imports this module, so every serving process
# creates each outcome's series at 0 when it starts.

FORWARD_OUTCOMES = ("ok", "workspace_error", "unreachable", "refused", "busy", "cancelled")
FORWARD_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)

chat_upload_forwards = Counter(
    "molecule_chat_upload_forwards_total",
    "Chat uploads to push-mode workspaces, by outcome: ok (the workspace answered 2xx), "
    "workspace_error (it answered otherwise; relayed as is), unreachable (no connection, a "
    "reset or the timeout), refused (the address guard refused its URL), busy (this worker's "
    "forwards were at PENDING_UPLOADS_FORWARD_MAX_CONCURRENT; 503), cancelled (the client went "
    "away or sent a bad body). A rising unreachable or busy share means users' files do not "
    "reach their workspaces.",
    ["outcome"],
)
for _outcome in FORWARD_OUTCOMES:
    chat_upload_forwards.labels(_outcome)

chat_upload_forward_duration = Histogram(
    "molecule_chat_upload_forward_duration_seconds",
    "Time of each forward that got a connection slot, from the request to the last byte of "
    "the workspace's answer (or the failure); a rise means slow workspaces are holding "
    "gunicorn threads.",
    buckets=FORWARD_DURATION_BUCKETS,
)
