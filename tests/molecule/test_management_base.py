"""The sweep command base: a usage error from the command line is one line and exit 2."""

from __future__ import annotations

import pytest
from django.core.management import load_command_class


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
