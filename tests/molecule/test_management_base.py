"""The sweep commands' base, in all four commands: cron-safe help and one-line failures."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any, NamedTuple

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import OperationalError

from molecule.managers import ActivityLogManager, WorkspaceManager
from pending_uploads.managers import PendingUploadManager, SweepError
from tests.helpers import UNREACHABLE_DATABASE_URL, assert_metric_delta, metrics_saved, run_manage


class Sweep(NamedTuple):
    name: str
    app: str
    duration_option: str
    # What its CommandError says first when the sweep fails.
    failed: str


SWEEPS = {
    sweep.name: sweep
    for sweep in (
        Sweep(
            "sweep_uploads", "pending_uploads", "--ack-retention", "pending_uploads sweep failed"
        ),
        Sweep("sweep_phantom_busy", "scheduler", "--stale-after", "phantom-busy sweep failed"),
        Sweep("sweep_activity", "molecule", "--retention", "activity_logs sweep failed"),
        Sweep("prune_workspaces", "molecule", "--idle-for", "workspace prune failed"),
    )
}
INVALID_UNIT = "use seconds, or a number followed by s, m, h or d"


class Failure(NamedTuple):
    """A manager method made to raise, and the error counter the failed sweep raises by one."""

    manager: type
    method: str
    error: Exception
    counter: str
    labels: dict[str, str]


# Each error has a second line, which the command's one-line CommandError must leave out.
FAILURES = {
    "sweep_uploads": Failure(
        PendingUploadManager,
        "sweep",
        SweepError("pending_uploads sweep failed: boom\nDETAIL: second line"),
        "molecule_pending_uploads_swept_total",
        {"outcome": "error"},
    ),
    "sweep_phantom_busy": Failure(
        WorkspaceManager,
        "reset_phantom_busy",
        RuntimeError("boom\nsecond line"),
        "molecule_phantom_busy_sweep_errors_total",
        {},
    ),
    "sweep_activity": Failure(
        ActivityLogManager,
        "_retention_cursor",
        OperationalError("boom\nsecond line"),
        "molecule_activity_logs_swept_total",
        {"outcome": "error"},
    ),
    "prune_workspaces": Failure(
        WorkspaceManager,
        "_prune_cursor",
        OperationalError("boom\nsecond line"),
        "molecule_workspaces_pruned_total",
        {"outcome": "error"},
    ),
}


@pytest.mark.parametrize("sweep", SWEEPS.values(), ids=SWEEPS.keys())
def test_every_sweep_command_says_it_is_safe_to_run_from_cron(sweep: Sweep) -> None:
    parser = load_command_class(sweep.app, sweep.name).create_parser("manage.py", sweep.name)
    # argparse wraps the text to the terminal's width.
    help_text = " ".join(parser.format_help().split())
    assert "Safe to run from cron" in help_text
    assert sweep.duration_option in help_text
    for option in ("--dry-run", "--json"):
        assert option in help_text


@pytest.mark.django_db
@pytest.mark.parametrize("sweep", SWEEPS.values(), ids=SWEEPS.keys())
def test_a_failing_sweep_is_a_one_line_command_error_with_exit_code_1_and_counted(
    sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = FAILURES[sweep.name]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise failure.error

    monkeypatch.setattr(failure.manager, failure.method, fail)
    before = metrics_saved()

    with pytest.raises(CommandError) as caught:
        call_command(sweep.name, stdout=StringIO(), stderr=StringIO())

    assert caught.value.returncode == 1
    assert str(caught.value) == f"{sweep.failed}: boom"
    assert_metric_delta(before, 1, failure.counter, **failure.labels)


def test_a_usage_error_from_the_command_line_is_one_line_and_exit_2(capsys):
    command = load_command_class("pending_uploads", "sweep_uploads")
    # As run_from_argv sets it: the one-line handler applies only to a real command line.
    command._called_from_command_line = True
    parser = command.create_parser("manage.py", "sweep_uploads")

    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--ack-retention", "soon"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("manage.py sweep_uploads: error: argument --ack-retention")
    assert err.count("\n") == 1


# --- real processes: the exit code and the one line an operator sees --------------------------


def usage_cases() -> list[Any]:
    """(command, arguments, its error line): each command's own duration, and one typo."""
    cases = []
    for sweep in SWEEPS.values():
        option = f"manage.py {sweep.name}: error: argument {sweep.duration_option}: "
        cases += [
            pytest.param(
                sweep.name,
                (sweep.duration_option, "2x"),
                f"{option}invalid duration '2x': ",
                id=f"{sweep.name}-bad-unit",
            ),
            pytest.param(
                sweep.name,
                (sweep.duration_option, "99999999999d"),
                f"{option}invalid duration ",
                id=f"{sweep.name}-out-of-range",
            ),
            pytest.param(
                sweep.name,
                (sweep.duration_option, "-5"),
                f"{option}invalid duration '-5': must not be negative",
                id=f"{sweep.name}-negative",
            ),
        ]
    # 0 where it means nothing: every busy workspace has been silent for 0 s.
    cases.append(
        pytest.param(
            "sweep_phantom_busy",
            ("--stale-after", "0"),
            "manage.py sweep_phantom_busy: error: argument --stale-after: "
            "invalid duration '0': must be more than 0",
            id="sweep_phantom_busy-zero",
        )
    )
    # Argument parsing is the base's: one command stands for all three.
    cases.append(
        pytest.param(
            "sweep_uploads",
            ("--no-such-option",),
            "manage.py sweep_uploads: error: ",
            id="sweep_uploads-unknown-option",
        )
    )
    return cases


@pytest.mark.parametrize(("name", "args", "line"), usage_cases())
def test_bad_arguments_exit_2_with_one_line(
    transactional_db, name: str, args: tuple[str, ...], line: str
) -> None:
    result = run_manage(name, *args)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(line)
    if args[-1] == "2x":
        assert lines[0].endswith(INVALID_UNIT)


@pytest.mark.parametrize("output", [(), ("--json",)], ids=["plain", "json"])
@pytest.mark.parametrize("sweep", SWEEPS.values(), ids=SWEEPS.keys())
def test_unreachable_database_exits_1_with_one_line(sweep: Sweep, output: tuple[str, ...]) -> None:
    result = run_manage(sweep.name, *output, database_url=UNREACHABLE_DATABASE_URL)

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    # The one line the docs promise, as migrate prints it: no log lines, no CommandError.
    assert re.fullmatch(
        r"database unavailable: connection failed: .*Connection refused\n", result.stderr
    ), result.stderr
