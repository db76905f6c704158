"""Conventions shared by the sweep commands: duration options, --json, one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from molecule.durations import parse_duration


def first_line(exc: BaseException) -> str:
    """The first line of an error's message: driver errors can span several lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def duration_argument(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class SweepCommand(BaseCommand):
    """A cron-safe command: exit 0 on success, 1 on a database failure, 2 on bad arguments."""

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
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print one line of JSON.")

    def emit(self, options: dict[str, Any], summary: str, payload: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(payload, separators=(",", ":")))
        else:
            self.stdout.write(summary)
