"""The development environment bin/run and bin/manage share: one key, one metrics directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where the dev tools keep state: ./.data, or MOLECULE_DATA_DIR (tests point it away)."""
    return Path(os.environ.get("MOLECULE_DATA_DIR") or BASE_DIR / ".data")


def embedded_pg_dir(env: dict[str, str]) -> Path:
    return Path(env.get("MOLECULE_EMBEDDED_PG_DIR") or data_dir() / "postgres")


def secret_key() -> str:
    """A per-checkout key kept in .data/, so sessions survive restarts of the run command."""
    path = data_dir() / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def dev_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) plus the dev defaults; what is set already wins."""
    env = dict(os.environ if base is None else base)
    env.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    env.setdefault("DEBUG", "1")
    env.setdefault("SECRET_KEY", secret_key())
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(data_dir() / "prometheus"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
