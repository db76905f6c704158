"""The /metrics page: django-prometheus' request metrics plus the database-backed ones."""

from __future__ import annotations

import os

import prometheus_client
from prometheus_client import multiprocess

from molecule.metrics import StoredMetricsCollector

MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def metrics_registry() -> prometheus_client.CollectorRegistry:
    """A fresh registry per scrape, as django-prometheus builds one, plus metric_totals.

    In multiprocess mode (gunicorn) the request metrics come from every worker's files; the
    stored metrics are global already and are read from the database, so every worker and
    every host serves the same totals. Without it, this process's own registry is served.
    """
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    if any(name in os.environ for name in MULTIPROC_VARIABLES):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(prometheus_client.REGISTRY)
    registry.register(StoredMetricsCollector())
    return registry


def metrics_page() -> tuple[bytes, str]:
    return (
        prometheus_client.generate_latest(metrics_registry()),
        prometheus_client.CONTENT_TYPE_LATEST,
    )
