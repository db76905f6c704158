"""The base of the cron-safe commands: --json and one-line errors; sweeps add a duration and
--dry-run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from molecule.durations import parse_duration
from molecule.errors import first_line


def duration_argument(*, positive: bool) -> Callable[[str], timedelta]:
    """An argparse type: a duration, refused in one line when negative (or 0 with positive)."""

    def parse(text: str) -> timedelta:
        try:
            return parse_duration(text, positive=positive)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


class CronCommand(BaseCommand):
    """A cron-safe command: exit 0 on success, 1 on its service's failure, 2 on bad arguments.

    A subclass names the error its service raises and implements ``run()``, which returns the
    one-line summary and the --json payload.
    """

    # The service's failure, turned into a one-line CommandError.
    error: type[Exception]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        command = self

        def one_line_error(message: str) -> None:
            if not command._called_from_command_line:
                return CommandParser.error(parser, message)
            sys.stderr.write(f"{prog_name} {subcommand}: error: {message}\n")
            sys.exit(2)

        parser.error = one_line_error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one line of JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        # A database that cannot be reached is not a failed run (nothing ran, and nothing can
        # be counted): its OperationalError goes to manage.py, which prints it in one line,
        # "database unavailable: ...", exit code 1, as it does for migrate. Connecting first
        # keeps the service's failure logs for runs that started.
        connection.ensure_connection()
        try:
            summary, payload = self.run(options)  # type: ignore[attr-defined]
        except self.error as exc:
            raise CommandError(first_line(exc), returncode=1) from None
        if options["json"]:
            self.stdout.write(json.dumps(payload, separators=(",", ":")))
        else:
            self.stdout.write(summary)


class SweepCommand(CronCommand):
    """A cron-safe sweep: a duration option, --dry-run and --json.

    A subclass names its duration option and implements ``sweep()``, which returns the summary
    and the --json payload. Both say whether it was a dry run here: " (dry run)" ends the
    summary's first line, "dry_run" ends the payload.
    """

    # The duration option, e.g. "--retention"; it defaults to None (the setting's value).
    duration_option: str
    duration_help: str
    # True where 0 means nothing (a stale threshold); a retention of 0 keeps nothing.
    duration_positive: bool = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            self.duration_option,
            type=duration_argument(positive=self.duration_positive),
            default=None,
            metavar="DURATION",
            help=self.duration_help,
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; change nothing."
        )
        super().add_arguments(parser)

    def run(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        summary, payload = self.sweep(options)  # type: ignore[attr-defined]
        payload["dry_run"] = options["dry_run"]
        if options["dry_run"]:
            head, newline, rest = summary.partition("\n")
            summary = f"{head} (dry run){newline}{rest}"
        return summary, payload
