"""Run and observe the real service processes (gunicorn and qcluster)."""

from devtools.processes.commands import (
    gunicorn_command,
    manage_command,
    qcluster_command,
    reset_metrics_dir,
    run_captured,
    run_manage,
    stop_processes,
)
from devtools.processes.probes import database_url_from_settings, free_port, http_get, metric_value
from devtools.processes.procfs import (
    process_children,
    process_descendants,
    process_reset_peak,
    process_rss_bytes,
)
from devtools.processes.s3 import S3Server
from devtools.processes.stack import ServiceStack

__all__ = [
    "S3Server",
    "ServiceStack",
    "database_url_from_settings",
    "free_port",
    "gunicorn_command",
    "http_get",
    "manage_command",
    "metric_value",
    "process_children",
    "process_descendants",
    "process_reset_peak",
    "process_rss_bytes",
    "qcluster_command",
    "reset_metrics_dir",
    "run_captured",
    "run_manage",
    "stop_processes",
]
