"""Django settings for molecule-uploads. The environment overrides the app defaults here only."""

import os
import re
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The one module of ours imported here, besides this package's parts: a parser with no imports
# beyond the standard library. Settings import no app (its conf.py reads settings; the arrows
# point one way).
from molecule.durations import parse_duration
from molecule.settings.framework import (  # noqa: F401 - settings Django reads from here
    AUTH_PASSWORD_VALIDATORS,
    DEFAULT_AUTO_FIELD,
    INSTALLED_APPS,
    LANGUAGE_CODE,
    LOGGING,
    MIDDLEWARE,
    ROOT_URLCONF,
    TEMPLATES,
    TIME_ZONE,
    USE_I18N,
    USE_TZ,
    WSGI_APPLICATION,
)
from molecule.settings.parsers import deploy_mode, http_url, integer, milliseconds

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_parsed(name: str, parse, default=None):
    """``parse(os.environ[name])``, or ``default`` when unset; a bad value stops in one line."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return parse(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def _env_int(name: str, default: int = 0) -> int:
    return _env_parsed(name, integer, default)


def _env_duration(name: str, *, positive: bool, default: timedelta | None = None):
    """A duration from the environment; negative, or 0 with ``positive``, stops in one line."""
    return _env_parsed(name, lambda text: parse_duration(text, positive=positive), default)


DEBUG = _env_bool("DEBUG", False)

# Settings never start a server: a process that lost its URL must stop, DEBUG or not, rather
# than come up on an empty database. The dev tools (bin/run, bin/test, bin/manage) start an
# embedded one and pass its URL. Checked first, so a bare environment names it.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL must be set (postgres://...); for development, bin/run, bin/test and "
        "bin/manage start an embedded PostgreSQL and set it"
    )

SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS")
if not DEBUG:
    # Production mode: refuse to start on a guessable key or an open Host header.
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
else:
    SECRET_KEY = SECRET_KEY or "django-insecure-development-only-key-never-use-in-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]
# Rotation the Django way: the old key moves here, so sessions and sealed secrets
# (molecule/sealing.py) made with it stay readable. Comma-separated.
if os.environ.get("SECRET_KEY_FALLBACKS"):
    SECRET_KEY_FALLBACKS = _env_list("SECRET_KEY_FALLBACKS")

# PostgreSQL is the only database, and only DATABASE_URL (checked first, above) names it.
# No CONN_HEALTH_CHECKS: it costs a round trip (SELECT 1) per request; molecule.connections
# checks a reused connection's socket instead, for free (docs/operations.md).
try:
    _database = dj_database_url.parse(
        DATABASE_URL, conn_max_age=_env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=False
    )
except ValueError as exc:
    # The URL itself stays out of the message: it may carry a password.
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
DATABASES = {"default": _database}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", _env_int("DB_CONNECT_TIMEOUT", 5))
DATABASES["default"]["OPTIONS"].setdefault("application_name", "molecule-uploads")
# TCP keepalives and tcp_user_timeout: a connection to a partitioned server fails in seconds
# instead of the kernel's two hours (libpq ignores them on Unix sockets): a peer silent for
# idle + interval x count seconds (4 + 2 x 2), or data unacknowledged for 8 s, is dead.
# Their defaults live here, with the DATABASES setting they are part of: no app reads them.
# A frozen server's kernel still answers the probes: molecule.dbdeadline (DB_CLIENT_TIMEOUT)
# covers that case.
DATABASES["default"]["OPTIONS"].setdefault("keepalives", 1)
DATABASES["default"]["OPTIONS"].setdefault("keepalives_idle", _env_int("DB_KEEPALIVES_IDLE", 4))
DATABASES["default"]["OPTIONS"].setdefault(
    "keepalives_interval", _env_int("DB_KEEPALIVES_INTERVAL", 2)
)
DATABASES["default"]["OPTIONS"].setdefault("keepalives_count", _env_int("DB_KEEPALIVES_COUNT", 2))


# Every session (web, commands, django-q2 jobs) runs with it: a runaway query is cancelled by
# PostgreSQL itself, even after the worker that sent it has been killed. 0 disables it. Its
# default lives here, with the DATABASES setting it is part of: no app reads it.
DB_STATEMENT_TIMEOUT_MS = _env_parsed("DB_STATEMENT_TIMEOUT", milliseconds, 30_000)
DATABASES["default"]["OPTIONS"].setdefault(
    "options", f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
)
DATABASES["default"]["OPTIONS"].setdefault(
    "tcp_user_timeout",
    _env_parsed("DB_TCP_USER_TIMEOUT", milliseconds, 8_000),
)
if os.environ.get("DB_CLIENT_TIMEOUT"):
    DB_CLIENT_TIMEOUT = _env_duration("DB_CLIENT_TIMEOUT", positive=False)
# The hot statements (authentication, polls, acks, file bytes) ask psycopg to prepare them
# (prepare=True), once per connection; a threshold never reached keeps every other statement
# unprepared (Django's own bind client-side and never are). None turns preparing off: for a
# pooler that cannot keep prepared statements across transactions (PgBouncer in transaction
# mode before 1.21).
DATABASES["default"]["OPTIONS"].setdefault(
    "prepare_threshold", 2**31 - 1 if _env_bool("DB_PREPARED_STATEMENTS", True) else None
)

# --- Admin logins: django-axes refuses a username from an address after AXES_FAILURE_LIMIT
# wrong passwords, for AXES_COOLOFF_TIME (its backend first, so a locked-out login never
# reaches the password check). axes reads these once at import, so they and their defaults
# (5 failures, 15 min) live here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = _env_duration("AXES_COOLOFF_TIME", positive=True, default=timedelta(minutes=15))
# Per username and address together: an attacker cannot lock the real admin out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address as the shipped nginx reports it (TRUSTED_PROXIES), not the proxy's own.
AXES_CLIENT_IP_CALLABLE = "molecule.http.auth.client_address"
# Lockouts are still logged; not a banner at every process start, which would break the
# commands' one-line errors on stderr.
AXES_VERBOSE = False

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / ".data" / "static")
# WhiteNoise serves what the installed apps ship (found at startup, like runserver does), so
# gunicorn alone styles the admin with no build step; collectstatic output in STATIC_ROOT is
# served as well when it exists; until then WhiteNoise would warn at every start that it is not.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message=f"No directory at: {re.escape(str(STATIC_ROOT))}")

# --- HTTP hardening. TLS ends at the reverse proxy, which sets X-Forwarded-Proto. ---
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", not DEBUG)
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")
X_FRAME_OPTIONS = "DENY"
# Redirect and HSTS are the proxy's call and are switched on from the environment
# (docs/configuration.md).
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008"]

# --- Uploads: every file part streams to a temporary file, never into memory. ---
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
# Unnamed temporary files: a worker killed mid-upload leaves none behind.
FILE_UPLOAD_HANDLERS = ["pending_uploads.uploadhandler.UnnamedTemporaryFileUploadHandler"]
# JSON bodies (register, heartbeat, activity) are small; anything larger is refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = _env_int("MOLECULE_MAX_JSON_BYTES", 1024 * 1024)

# --- App settings: assigned only when the environment sets them; the defaults live in each
# app's conf.py, which reads these at call time. Each tuple names the settings of one kind
# (lower case, so that Django does not take the tuples for settings); a bad value stops in one
# line naming it. The ones with more to them follow the loops.
_app_integers = (
    "PENDING_UPLOADS_MAX_FILE_BYTES",
    "PENDING_UPLOADS_MAX_REQUEST_BYTES",
    "PENDING_UPLOADS_MAX_FILES",
    "PENDING_UPLOADS_SWEEP_BATCH_SIZE",
    "PENDING_UPLOADS_SWEEP_BATCH_BYTES",
    "PENDING_UPLOADS_S3_PART_BYTES",
    "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT",
    "ACTIVITY_SWEEP_BATCH_SIZE",
    "WORKSPACE_PRUNE_BATCH_SIZE",
    "QUOTA_PENDING_BYTES",
    "QUOTA_ACTIVITY_BYTES",
    "QUOTA_UPLOADS",
)
# Intervals, TTLs and timeouts: more than 0.
_app_durations = (
    "PENDING_UPLOADS_TTL",
    "PENDING_UPLOADS_SWEEP_INTERVAL",
    "PENDING_UPLOADS_FORWARD_CONNECT_TIMEOUT",
    "PENDING_UPLOADS_FORWARD_TIMEOUT",
    "PHANTOM_BUSY_STALE_AFTER",
    "PHANTOM_BUSY_SWEEP_INTERVAL",
    "ACTIVITY_SWEEP_INTERVAL",
    "WORKSPACE_PRUNE_AFTER",
    "WORKSPACE_PRUNE_INTERVAL",
    "QUOTA_WINDOW",
)
# Retentions, grace periods and overlaps: 0 allowed (keep nothing past the next run).
_app_spans = (
    "PENDING_UPLOADS_ACK_RETENTION",
    "PENDING_UPLOADS_REAP_GRACE",
    "ACTIVITY_RETENTION",
    "ACTIVITY_SOFT_RETENTION",
    "TOKEN_ROTATION_OVERLAP",
)
# Object storage: the bucket and its options. Endpoint, credentials and region are boto3's own
# environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...), read by boto3, never here.
# MOLECULE_ENV and MOLECULE_ORG_ID are the address guard's (molecule/addresses.py), upstream's
# names; MOLECULE_ENV is its own switch, never DEBUG: a production box with DEBUG on still
# refuses loopback URLs.
_app_texts = (
    "PENDING_UPLOADS_S3_BUCKET",
    "PENDING_UPLOADS_S3_PREFIX",
    "PENDING_UPLOADS_S3_ADDRESSING_STYLE",
    "MOLECULE_ENV",
    "MOLECULE_ORG_ID",
)
for _integer in _app_integers:
    if os.environ.get(_integer):
        globals()[_integer] = _env_int(_integer)
for _duration in _app_durations:
    if os.environ.get(_duration):
        globals()[_duration] = _env_duration(_duration, positive=True)
for _span in _app_spans:
    if os.environ.get(_span):
        globals()[_span] = _env_duration(_span, positive=False)
for _text in _app_texts:
    if os.environ.get(_text):
        globals()[_text] = os.environ[_text]
if os.environ.get("PENDING_UPLOADS_MAX_FILES"):
    # Django's own part-count limit stays above the app's cap, so the app's "at most N files"
    # answers, not Django (tests/pending_uploads/test_api.py checks Django's default does too).
    DATA_UPLOAD_MAX_NUMBER_FILES = globals()["PENDING_UPLOADS_MAX_FILES"] + 1
if os.environ.get("EXTERNAL_PLATFORM_URL"):
    EXTERNAL_PLATFORM_URL = _env_parsed("EXTERNAL_PLATFORM_URL", http_url)
if os.environ.get("MOLECULE_DEPLOY_MODE"):
    MOLECULE_DEPLOY_MODE = _env_parsed("MOLECULE_DEPLOY_MODE", deploy_mode)
# Upstream's names for the phantom-busy job; ours win when both are set.
if os.environ.get("PHANTOM_BUSY_SWEEPER_INTERVAL_S") and not os.environ.get(
    "PHANTOM_BUSY_SWEEP_INTERVAL"
):
    PHANTOM_BUSY_SWEEP_INTERVAL = _env_duration("PHANTOM_BUSY_SWEEPER_INTERVAL_S", positive=True)
if os.environ.get("PHANTOM_BUSY_SWEEPER_DISABLED"):
    PHANTOM_BUSY_SWEEP_DISABLED = _env_bool("PHANTOM_BUSY_SWEEPER_DISABLED", False)

if os.environ.get("TRUSTED_PROXIES"):
    TRUSTED_PROXIES = tuple(_env_list("TRUSTED_PROXIES"))

METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# The operator tier (upstream's ADMIN_TOKEN): accepted on every /workspaces/<id>/ route.
ADMIN_TOKEN = os.environ.get("ADMIN_TOKEN", "")

# --- django-q2. Q_CLUSTER is read once at import, so tests cannot override it. ---
Q_CLUSTER = {
    "name": "molecule",
    "workers": _env_int("Q_WORKERS", 2),
    # A task that runs longer than `timeout` is killed; it must stay below `retry`
    # or the broker re-delivers a task that is still running.
    "timeout": 240,
    "retry": 300,
    # A failed sweep is not retried by the broker: the next scheduled run is the retry.
    "max_attempts": 1,
    "ack_failures": True,
    # After downtime, run a missed schedule once, not once per missed interval.
    "catch_up": False,
    "save_limit": 500,
    "poll": 1,
    "label": "Task queue",
}
if os.environ.get("Q_REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["Q_REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"
