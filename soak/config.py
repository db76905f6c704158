"""The soak's fixed figures: pacing, bounds of the checks, and the traffic's file names."""

from __future__ import annotations

import sys

SWEEP_TASK = "pending_uploads.tasks.sweep_pending_uploads"
SWEPT_METRIC = "molecule_pending_uploads_swept_total"
REQUEST_TIMEOUT = 30.0
# Loops are bounded by count as well as by time, so a stuck clock cannot spin forever.
MAX_CLIENT_ITERATIONS = 1_000_000
MAX_WORKSPACES_PER_CLIENT = 20
NEW_WORKSPACE_EVERY = 50
HEARTBEAT_EVERY = 10
PROGRESS_EVERY = 30.0
FINAL_SWEEP_TIMEOUT = 60.0
# Slack in the row bound: uploads in flight when a sample is taken are in the table but
# not yet in the driver's ledger.
ROW_SLACK = 50
# An empty pending_uploads with its TOAST table and four indexes, and then some.
BASELINE_BYTES = 2 * 1024 * 1024
# Per row beyond the file itself: tuple header, TOAST pointer, four index entries, page slack.
ROW_OVERHEAD_BYTES = 1024
RSS_FACTOR = 2.0
RSS_SLACK_BYTES = 50 * 1024 * 1024
MIB = 1024 * 1024
CHECK_NAMES = (
    "no_5xx",
    "responses",
    "table_bounded",
    "sweeps",
    "acked_gone",
    "metrics_match",
    "exercised",
    "memory",
)
FILENAMES = ("notes.txt", "photo 1.png", "résumé.pdf", "../etc/passwd", "data.csv", "a")
MIMETYPES = ("text/plain", "image/png", "application/pdf", "application/octet-stream")


def say(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)
