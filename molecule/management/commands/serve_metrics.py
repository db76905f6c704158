"""Serve this host's multiprocess metrics on a port of its own, for a qcluster-only container."""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector


class Command(BaseCommand):
    help = (
        "Serve the metrics in PROMETHEUS_MULTIPROC_DIR over HTTP (a second scrape target beside "
        "the web /metrics, for a container that runs only qcluster). Runs until stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--addr", default="0.0.0.0")  # noqa: S104 - a scrape target

    def handle(self, *args: Any, **options: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory or not os.path.isdir(directory):
            raise CommandError("PROMETHEUS_MULTIPROC_DIR must name an existing directory")
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        try:
            start_http_server(options["port"], addr=options["addr"], registry=registry)
        except OSError as exc:
            where = f"{options['addr']}:{options['port']}"
            raise CommandError(f"cannot listen on {where}: {exc}") from None
        self.stdout.write(f"serving {directory} on http://{options['addr']}:{options['port']}/")
        threading.Event().wait()
