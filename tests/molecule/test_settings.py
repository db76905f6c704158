"""Production settings: check --deploy passes, DEBUG is off by default, bad config fails clearly."""

from __future__ import annotations

import ast
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
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
    "deploy-mode-unknown": (
        {"MOLECULE_DEPLOY_MODE": "cloud"},
        "MOLECULE_DEPLOY_MODE: must be one of saas, self-hosted, selfhosted, standalone, "
        "got 'cloud'",
    ),
    "forward-timeout-bad": (
        {"PENDING_UPLOADS_FORWARD_TIMEOUT": "soon"},
        "PENDING_UPLOADS_FORWARD_TIMEOUT: invalid duration 'soon'",
    ),
    "forward-cap-bad": (
        {"PENDING_UPLOADS_FORWARD_MAX_CONCURRENT": "many"},
        "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT: must be an integer, got 'many'",
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


def python_prints(code: str, env: dict[str, str]) -> str:
    """What ``python -c code`` prints with ``env``; it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


PRINT_UPSTREAM_ALIASES = (
    "import django; django.setup(); from django.conf import settings; "
    "from scheduler import conf; "
    "print(settings.DATABASES['default']['OPTIONS']['options'], "
    "conf.phantom_busy_sweep_interval(), conf.phantom_busy_sweep_disabled())"
)


def printed_by(code: str, **env: str | None) -> str:
    """What ``python -c code`` prints in a production environment with ``env``."""
    return python_prints(code, production_env(**env))


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


PRINT_FILE_CAPS = (
    "import django; django.setup(); from django.conf import settings; "
    "from pending_uploads import conf; "
    "print(conf.max_files(), settings.DATA_UPLOAD_MAX_NUMBER_FILES)"
)


@pytest.mark.parametrize(
    ("max_files", "printed"), [(None, "64 100"), ("150", "150 151"), ("10", "10 11")]
)
def test_djangos_part_count_limit_stays_above_the_file_cap(max_files, printed):
    env = production_env(PENDING_UPLOADS_MAX_FILES=max_files)
    assert python_prints(PRINT_FILE_CAPS, env) == printed


# A duration setting that means nothing: a negative one, or 0 where it is a TTL, an interval or
# a stale threshold (a retention or a statement timeout of 0 means something: keep nothing,
# no timeout).
MEANINGLESS_DURATIONS = [
    ("PENDING_UPLOADS_TTL", "0", "must be more than 0"),
    ("PENDING_UPLOADS_TTL", "-1h", "must not be negative"),
    ("PENDING_UPLOADS_ACK_RETENTION", "-5", "must not be negative"),
    ("PENDING_UPLOADS_SWEEP_INTERVAL", "0", "must be more than 0"),
    ("PHANTOM_BUSY_STALE_AFTER", "0s", "must be more than 0"),
    ("PHANTOM_BUSY_SWEEP_INTERVAL", "0", "must be more than 0"),
    ("PHANTOM_BUSY_SWEEPER_INTERVAL_S", "0", "must be more than 0"),
    ("ACTIVITY_RETENTION", "-1d", "must not be negative"),
    ("ACTIVITY_SWEEP_INTERVAL", "0m", "must be more than 0"),
    ("DB_STATEMENT_TIMEOUT", "-5", "must not be negative"),
]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    MEANINGLESS_DURATIONS,
    ids=[f"{name}={value}" for name, value, _ in MEANINGLESS_DURATIONS],
)
def test_a_meaningless_duration_setting_stops_in_one_line(name, value, reason):
    # The alias is read only when our name is unset.
    env = production_env(**{"PHANTOM_BUSY_SWEEP_INTERVAL": None, name: value})

    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"configuration error: {name}: invalid duration {value!r}: {reason}"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["PENDING_UPLOADS_ACK_RETENTION", "DB_STATEMENT_TIMEOUT"])
def test_a_retention_or_statement_timeout_of_0_is_accepted(name):
    result = run_manage("check", env=production_env(**{name: "0"}))

    assert result.returncode == 0, result.stderr


def test_a_bad_statement_timeout_is_a_one_line_error():
    result = run_manage("check", env=production_env(DB_STATEMENT_TIMEOUT="soon"))
    assert result.returncode != 0
    assert "DB_STATEMENT_TIMEOUT: invalid duration 'soon'" in result.stderr


PRINT_ABUSE_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; from molecule import conf; "
    "o = settings.DATABASES['default']['OPTIONS']; "
    "print(o['keepalives'], o['keepalives_idle'], o['keepalives_interval'], "
    "o['keepalives_count'], o['tcp_user_timeout'], o['connect_timeout'], "
    "conf.db_client_timeout().total_seconds(), settings.AXES_FAILURE_LIMIT, "
    "settings.AXES_COOLOFF_TIME.total_seconds(), conf.trusted_proxies(), "
    "conf.quota_pending_bytes(), conf.quota_activity_bytes(), conf.quota_uploads(), "
    "conf.quota_window().total_seconds(), conf.workspace_prune_after().days, "
    "conf.workspace_prune_interval().total_seconds(), conf.workspace_prune_batch_size(), "
    "conf.token_rotation_overlap().total_seconds())"
)
ABUSE_NAMES = (
    "DB_KEEPALIVES_IDLE",
    "DB_KEEPALIVES_INTERVAL",
    "DB_KEEPALIVES_COUNT",
    "DB_TCP_USER_TIMEOUT",
    "DB_CONNECT_TIMEOUT",
    "DB_CLIENT_TIMEOUT",
    "AXES_FAILURE_LIMIT",
    "AXES_COOLOFF_TIME",
    "TRUSTED_PROXIES",
    "QUOTA_PENDING_BYTES",
    "QUOTA_ACTIVITY_BYTES",
    "QUOTA_UPLOADS",
    "QUOTA_WINDOW",
    "WORKSPACE_PRUNE_AFTER",
    "WORKSPACE_PRUNE_INTERVAL",
    "WORKSPACE_PRUNE_BATCH_SIZE",
    "TOKEN_ROTATION_OVERLAP",
)


PRINT_FEED_SETTINGS = (
    "import django; django.setup(); from molecule import conf; "
    "print(conf.activity_soft_retention(), conf.activity_retention(), "
    "repr(conf.external_platform_url()))"
)
FEED_SETTINGS = ("ACTIVITY_SOFT_RETENTION", "ACTIVITY_RETENTION", "EXTERNAL_PLATFORM_URL")


PRINT_PUSH_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "from molecule.addresses import AddressPolicy; from pending_uploads import conf; "
    "print(AddressPolicy.current(), conf.forward_connect_timeout(), conf.forward_timeout(), "
    "conf.forward_max_concurrent(), settings.SECRET_KEY_FALLBACKS)"
)
PUSH_VARIABLES = (
    "MOLECULE_ENV",
    "MOLECULE_DEPLOY_MODE",
    "MOLECULE_ORG_ID",
    "PENDING_UPLOADS_FORWARD_CONNECT_TIMEOUT",
    "PENDING_UPLOADS_FORWARD_TIMEOUT",
    "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT",
    "SECRET_KEY_FALLBACKS",
)


PRINT_STORAGE = (
    "import django; django.setup(); from pending_uploads import conf; "
    "print(repr(conf.s3_bucket()), repr(conf.s3_prefix()), conf.s3_part_bytes(), "
    "conf.s3_addressing_style(), conf.reap_grace())"
)


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


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        (
            {},
            "AddressPolicy(loopback=False, private=False) 0:00:10 0:20:00 8 []",
        ),
        (
            {
                "MOLECULE_ENV": "Development",
                "PENDING_UPLOADS_FORWARD_CONNECT_TIMEOUT": "3",
                "PENDING_UPLOADS_FORWARD_TIMEOUT": "5m",
                "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT": "4",
                "SECRET_KEY_FALLBACKS": "old-key-1, old-key-2",
            },
            "AddressPolicy(loopback=True, private=True) 0:00:03 0:05:00 4 "
            "['old-key-1', 'old-key-2']",
        ),
        (
            # DEBUG is not the address guard's switch.
            {"DEBUG": "1"},
            "AddressPolicy(loopback=False, private=False) 0:00:10 0:20:00 8 []",
        ),
        (
            {"MOLECULE_DEPLOY_MODE": " SAAS "},
            "AddressPolicy(loopback=False, private=True) 0:00:10 0:20:00 8 []",
        ),
        (
            {"MOLECULE_ORG_ID": "org-1"},
            "AddressPolicy(loopback=False, private=True) 0:00:10 0:20:00 8 []",
        ),
        (
            {"MOLECULE_ORG_ID": "org-1", "MOLECULE_DEPLOY_MODE": "self-hosted"},
            "AddressPolicy(loopback=False, private=False) 0:00:10 0:20:00 8 []",
        ),
    ],
    ids=["defaults", "development", "debug", "saas", "org-id", "self-hosted-wins"],
)
def test_push_settings_come_from_the_environment(env, printed):
    assert printed_by(PRINT_PUSH_SETTINGS, **{**dict.fromkeys(PUSH_VARIABLES), **env}) == printed


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        (
            {},
            "1 4 2 2 8000 5 8.0 5 900.0 ('127.0.0.1', '::1') 5368709120 268435456 1000 "
            "3600.0 30 3600.0 500 900.0",
        ),
        (
            dict(
                zip(
                    ABUSE_NAMES,
                    (
                        # keepalives, tcp_user_timeout, connect and client timeouts
                        *("10", "3", "4", "15s", "3", "6s"),
                        # axes, trusted proxies, quotas, prune, rotation
                        *("8", "1h", "10.0.0.2, ::1", "1000", "2000", "30", "10m"),
                        *("7d", "30m", "50", "1m"),
                    ),
                    strict=True,
                )
            ),
            "1 10 3 4 15000 3 6.0 8 3600.0 ('10.0.0.2', '::1') 1000 2000 30 600.0 7 1800.0 50 60.0",
        ),
    ],
    ids=["defaults", "from-the-environment"],
)
def test_abuse_settings_from_the_environment(env: dict[str, str], printed: str) -> None:
    assert printed_by(PRINT_ABUSE_SETTINGS, **{**dict.fromkeys(ABUSE_NAMES), **env}) == printed


def test_a_bad_quota_is_a_one_line_error() -> None:
    result = run_manage("check", env=production_env(QUOTA_UPLOADS="many"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: QUOTA_UPLOADS: must be an integer, got 'many'"
    ]


# Imported by the settings although it lives in the molecule package: a parser that imports
# only the standard library, so it cannot read a setting (checked below).
LEAF_MODULES = {"molecule.durations"}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` in ``path`` names, ``from a import b`` as both a and a.b."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"relative import in {path}"
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_path(name: str) -> Path:
    return Path(settings.BASE_DIR, *name.split(".")).with_suffix(".py")


def test_settings_import_no_app_module() -> None:
    # The apps of this repository (packages at its top); Django's and third-party apps are
    # libraries.
    ours = {
        config.name
        for config in apps.get_app_configs()
        if Path(config.path).parent == Path(settings.BASE_DIR)
    }
    assert ours == {"molecule", "pending_uploads", "scheduler"}
    package = Path(settings.BASE_DIR, "molecule", "settings")
    imported = set().union(*(imported_modules(path) for path in package.glob("*.py")))

    of_ours = {name for name in imported if name.partition(".")[0] in ours}
    apps_imported = {
        name
        for name in of_ours
        if not any(name == leaf or name.startswith(f"{leaf}.") for leaf in LEAF_MODULES)
        # The settings package's own parts.
        and not name.startswith("molecule.settings.")
    }

    assert apps_imported == set(), sorted(apps_imported)
    for leaf in LEAF_MODULES:
        outside = {
            name
            for name in imported_modules(module_path(leaf))
            if name.partition(".")[0] not in sys.stdlib_module_names
        }
        assert outside == set(), f"{leaf} imports {sorted(outside)}"


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({}, "'' '' 8388608 auto 1:00:00"),
        (
            {
                "PENDING_UPLOADS_S3_BUCKET": "uploads",
                "PENDING_UPLOADS_S3_PREFIX": "molecule/",
                "PENDING_UPLOADS_S3_PART_BYTES": "16777216",
                "PENDING_UPLOADS_S3_ADDRESSING_STYLE": "path",
                "PENDING_UPLOADS_REAP_GRACE": "6h",
            },
            "'uploads' 'molecule/' 16777216 path 6:00:00",
        ),
    ],
    ids=["defaults", "set"],
)
def test_object_storage_settings_come_from_the_environment(env, printed):
    names = (
        "PENDING_UPLOADS_S3_BUCKET",
        "PENDING_UPLOADS_S3_PREFIX",
        "PENDING_UPLOADS_S3_PART_BYTES",
        "PENDING_UPLOADS_S3_ADDRESSING_STYLE",
        "PENDING_UPLOADS_REAP_GRACE",
    )
    assert printed_by(PRINT_STORAGE, **{**dict.fromkeys(names), **env}) == printed


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
