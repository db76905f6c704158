"""Production settings: check --deploy passes, DEBUG is off by default, bad config fails clearly."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from devtools.processes import database_url_from_settings
from tests.helpers import UNREACHABLE_DATABASE_URL, run_manage, service_stack

PRINT_DEBUG = "from django.conf import settings; print(settings.DEBUG)"

# Child processes get the URL of the test database; the settings start no server of their own.
pytestmark = pytest.mark.django_db


def production_env(**overrides: str | None) -> dict[str, str]:
    """The environment of a production process; an override of None removes the variable."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "molecule.settings",
            "DATABASE_URL": database_url_from_settings(connection.settings_dict),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "example.com",
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_check_deploy_passes_with_production_settings() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_still_flags_a_weak_secret_key() -> None:
    # The pass above means something only if the deploy checks are live.
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=production_env(SECRET_KEY="short-key"),
    )
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("debug", "expected"),
    [(None, "False"), ("", "False"), ("0", "False"), ("false", "False"), ("1", "True")],
)
def test_debug_is_off_unless_switched_on(debug: str | None, expected: str) -> None:
    result = run_manage("shell", "-v", "0", "-c", PRINT_DEBUG, env=production_env(DEBUG=debug))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


CONFIGURATION_ERRORS = {
    "secret-key-missing": ({"SECRET_KEY": None}, "SECRET_KEY"),
    "secret-key-empty": ({"SECRET_KEY": ""}, "SECRET_KEY"),
    "secret-key-missing-debug-unset": ({"SECRET_KEY": None, "DEBUG": None}, "SECRET_KEY"),
    "allowed-hosts-missing": ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS"),
    "allowed-hosts-empty": ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    "allowed-hosts-only-commas": ({"ALLOWED_HOSTS": " , ,"}, "ALLOWED_HOSTS"),
    "database-url-missing": ({"DATABASE_URL": None}, "DATABASE_URL must be set"),
    "database-url-missing-debug-on": ({"DATABASE_URL": None, "DEBUG": "1"}, "DATABASE_URL"),
    "database-url-empty": ({"DATABASE_URL": ""}, "DATABASE_URL must be set"),
    "database-url-malformed": ({"DATABASE_URL": "postgres://[::1"}, "DATABASE_URL is malformed"),
    "database-url-sqlite": ({"DATABASE_URL": "sqlite:///molecule.sqlite3"}, "PostgreSQL"),
    "database-url-mysql": ({"DATABASE_URL": "mysql://root@127.0.0.1/molecule"}, "PostgreSQL"),
    "external-platform-url-no-scheme": (
        {"EXTERNAL_PLATFORM_URL": "platform.example"},
        "EXTERNAL_PLATFORM_URL: must be an http(s) URL, got 'platform.example'",
    ),
    "soft-retention-not-a-duration": (
        {"ACTIVITY_SOFT_RETENTION": "a week"},
        "ACTIVITY_SOFT_RETENTION: invalid duration 'a week'",
    ),
}


@pytest.mark.parametrize(
    ("overrides", "mentions"), CONFIGURATION_ERRORS.values(), ids=CONFIGURATION_ERRORS.keys()
)
def test_bad_configuration_is_one_clear_line(
    overrides: dict[str, str | None], mentions: str
) -> None:
    result = run_manage("check", env=production_env(**overrides))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "overrides",
    [{"DEBUG": "0"}, {"DEBUG": "1"}, {"DEBUG": "0", "SECRET_KEY": None, "ALLOWED_HOSTS": None}],
    ids=["debug-off", "debug-on", "bare-environment"],
)
def test_no_database_url_starts_no_server(tmp_path: Path, overrides: dict[str, str | None]) -> None:
    # Where the settings once started an embedded server: the directory must not appear.
    data_dir = tmp_path / "data"
    env = production_env(DATABASE_URL=None, MOLECULE_EMBEDDED_PG_DIR=str(data_dir), **overrides)
    result = run_manage("check", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL must be set (postgres://...); for development, "
        "bin/run, bin/test and bin/manage start an embedded PostgreSQL and set it"
    ]
    assert not data_dir.exists()


@pytest.mark.parametrize("command", ["migrate", "qcluster"])
def test_unreachable_database_is_one_line(command: str) -> None:
    result = run_manage(command, env=production_env(DATABASE_URL=UNREACHABLE_DATABASE_URL))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("database unavailable: ")
    assert "Connection refused" in lines[0]


# (process, environment beside a valid DATABASE_URL or None for none, the one line it stops with)
REFUSED_STARTS = {
    "qcluster without DATABASE_URL": ("qcluster", None, "DATABASE_URL must be set"),
    # The master halts too (App failed to load), rather than rebooting workers forever.
    "gunicorn without DATABASE_URL": (
        "gunicorn",
        None,
        "configuration error: DATABASE_URL must be set",
    ),
    "qcluster without SECRET_KEY": ("qcluster", {"SECRET_KEY": ""}, "SECRET_KEY must be set"),
    "gunicorn without ALLOWED_HOSTS": (
        "gunicorn",
        {"ALLOWED_HOSTS": ""},
        "ALLOWED_HOSTS must be set",
    ),
}


@pytest.mark.parametrize(
    ("process", "env", "message"), REFUSED_STARTS.values(), ids=REFUSED_STARTS.keys()
)
def test_a_misconfigured_process_refuses_to_start_with_one_line(
    tmp_path: Path, process: str, env: dict[str, str] | None, message: str
) -> None:
    stack = service_stack(
        tmp_path,
        database_url="" if env is None else database_url_from_settings(connection.settings_dict),
        extra_env=env or {},
    )
    exited = (
        "qcluster-0 exited with code 1" if process == "qcluster" else "gunicorn exited with code"
    )
    with pytest.raises(RuntimeError, match=exited):
        stack.start(web=process == "gunicorn", qcluster=process == "qcluster", timeout=60)
    assert stack.log_text().count(message) == 1, stack.log_text()
    assert "Traceback" not in stack.log_text()


PRINT_UPSTREAM_ALIASES = (
    "import django; django.setup(); from django.conf import settings; "
    "from scheduler import conf; "
    "print(settings.DATABASES['default']['OPTIONS']['options'], "
    "conf.phantom_busy_sweep_interval(), conf.phantom_busy_sweep_disabled())"
)


def printed_by(code: str, **env: str | None) -> str:
    """What ``python -c code`` prints in a production environment with ``env``."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({}, "-c statement_timeout=30000 0:05:00 False"),
        (
            {
                "DB_STATEMENT_TIMEOUT": "1500",
                "PHANTOM_BUSY_SWEEPER_INTERVAL_S": "90",
                "PHANTOM_BUSY_SWEEPER_DISABLED": "1",
            },
            "-c statement_timeout=1500 0:01:30 True",
        ),
        (
            # Our name wins over upstream's alias; durations and "ms" are accepted.
            {
                "DB_STATEMENT_TIMEOUT": "2m",
                "PHANTOM_BUSY_SWEEP_INTERVAL": "10m",
                "PHANTOM_BUSY_SWEEPER_INTERVAL_S": "90",
            },
            "-c statement_timeout=120000 0:10:00 False",
        ),
        ({"DB_STATEMENT_TIMEOUT": "250ms"}, "-c statement_timeout=250 0:05:00 False"),
    ],
    ids=["defaults", "upstream-names", "ours-win", "ms"],
)
def test_statement_timeout_and_upstream_phantom_busy_names(env, printed):
    unset = (
        "DB_STATEMENT_TIMEOUT",
        "PHANTOM_BUSY_SWEEP_INTERVAL",
        "PHANTOM_BUSY_SWEEPER_INTERVAL_S",
        "PHANTOM_BUSY_SWEEPER_DISABLED",
    )
    assert printed_by(PRINT_UPSTREAM_ALIASES, **{**dict.fromkeys(unset), **env}) == printed


def test_a_bad_statement_timeout_is_a_one_line_error():
    result = run_manage("check", env=production_env(DB_STATEMENT_TIMEOUT="soon"))
    assert result.returncode != 0
    assert "DB_STATEMENT_TIMEOUT: invalid duration 'soon'" in result.stderr


PRINT_FEED_SETTINGS = (
    "import django; django.setup(); from molecule import conf; "
    "print(conf.activity_soft_retention(), conf.activity_retention(), "
    "repr(conf.external_platform_url()))"
)
FEED_SETTINGS = ("ACTIVITY_SOFT_RETENTION", "ACTIVITY_RETENTION", "EXTERNAL_PLATFORM_URL")


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({}, "7 days, 0:00:00 30 days, 0:00:00 ''"),
        (
            {
                "ACTIVITY_SOFT_RETENTION": "2d",
                "ACTIVITY_RETENTION": "10d",
                "EXTERNAL_PLATFORM_URL": "https://platform.example/",
            },
            "2 days, 0:00:00 10 days, 0:00:00 'https://platform.example/'",
        ),
    ],
    ids=["defaults", "from-the-environment"],
)
def test_the_feed_settings_come_from_the_environment_or_conf(env, printed):
    assert printed_by(PRINT_FEED_SETTINGS, **{**dict.fromkeys(FEED_SETTINGS), **env}) == printed


PRINT_CONNECTION_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; "
    "print(db['CONN_HEALTH_CHECKS'], db['OPTIONS']['prepare_threshold'])"
)


@pytest.mark.parametrize(
    ("value", "printed"),
    [(None, "False 2147483647"), ("1", "False 2147483647"), ("0", "False None")],
    ids=["default", "on", "off"],
)
def test_prepared_statements_are_on_unless_switched_off_and_health_checks_cost_no_query(
    value, printed
):
    # The threshold is never reached: only statements that ask (prepare=True) are prepared;
    # None turns even those off. Dead connections are found without a query (connections.py).
    assert printed_by(PRINT_CONNECTION_SETTINGS, DB_PREPARED_STATEMENTS=value) == printed
