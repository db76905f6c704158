"""The benchmark's PostgreSQL: the server, its scratch databases, and copies restored between runs.

Every data set is built once into a template database; each run starts from a fresh
``CREATE DATABASE ... TEMPLATE`` copy, so every variant meets the same bytes on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

logger = logging.getLogger("bench")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
FILE_COPY_ABOVE_BYTES = 256 * 1024 * 1024


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    """Run ``manage.py <args>`` in a child with ``env``; RuntimeError with stderr on failure."""
    from devtools.processes import run_manage

    try:
        run_manage(env, *args, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"manage.py {args[0]} failed:\n{exc.stdout}\n{exc.stderr[-2000:]}"
        ) from None


class Server:
    """``DATABASE_URL``'s server when set, else an embedded pgserver in a temporary directory."""

    def __init__(self, url: str, kind: str, scratch: Path | None = None) -> None:
        self._url = url
        self.kind = kind
        self._scratch = scratch

    @classmethod
    def start(cls) -> Server:
        url = os.environ.get("DATABASE_URL", "")
        if url:
            return cls(url, "DATABASE_URL")
        from devtools.embedded_pg import embedded_database_url

        scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-pg."))
        # Running as root, pgserver runs the server as its own user, who must reach the directory.
        scratch.chmod(0o755)
        return cls(embedded_database_url(scratch / "data"), "embedded", scratch)

    def url(self, dbname: str) -> str:
        parts = urlsplit(self._url)
        return urlunsplit(parts._replace(path="/" + dbname))

    def stop(self) -> None:
        if self._scratch is None:
            return
        from devtools.embedded_pg import EmbeddedPostgres

        EmbeddedPostgres(self._scratch / "data").stop()
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = None


class BenchDatabases:
    """The working database ``name`` plus ``<name>_schema`` and ``<name>_tpl_<data set>``."""

    def __init__(self, server: Server, name: str) -> None:
        if not NAME_RE.match(name):
            raise ValueError(f"database name must match {NAME_RE.pattern}: {name!r}")
        self.server = server
        self.name = name
        self.schema = f"{name}_schema"
        self._file_copy = False

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def template(self, dataset: str) -> str:
        return f"{self.name}_tpl_{dataset}"

    def admin(self) -> psycopg.Connection:
        """An autocommit connection to a maintenance database, for CREATE/DROP DATABASE."""
        for dbname in ("postgres", "template1"):
            with contextlib.suppress(psycopg.OperationalError):
                return psycopg.connect(self.server.url(dbname), autocommit=True)
        return psycopg.connect(self.server.url("postgres"), autocommit=True)

    def connect(self, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=autocommit)

    def setup(self) -> None:
        """Drop what an earlier run left, then create the schema database and migrate it."""
        self.drop_all()
        with self.admin() as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0]
            # CREATE DATABASE ... STRATEGY exists from PostgreSQL 15 on.
            self._file_copy = int(version) >= 150000
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.schema)))
        manage(
            {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "molecule.settings",
                "DATABASE_URL": self.server.url(self.schema),
                "DEBUG": "1",
            },
            "migrate",
            "--noinput",
        )

    def drop_all(self) -> None:
        with self.admin() as conn:
            pattern = f"^{self.name}_tpl_[a-z0-9_]+$"
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ %s", [pattern]
            ).fetchall()
            for name in [self.name, self.schema, *(row[0] for row in rows)]:
                self._drop(conn, name)

    def drop_template(self, dataset: str) -> None:
        with self.admin() as conn:
            self._drop(conn, self.template(dataset))

    def has_template(self, dataset: str) -> bool:
        with self.admin() as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.template(dataset)]
            ).fetchone()
        return found is not None

    def built(self, dataset: str, what: str, fill: Callable[[psycopg.Connection], None]) -> str:
        """The template ``dataset``: ``fill`` run on a fresh database the first time, then kept."""
        if not self.has_template(dataset):
            logger.info("building %s (%s)", dataset, what)
            self.fresh()
            with self.connect() as conn:
                fill(conn)
                conn.execute("VACUUM (FREEZE, ANALYZE) pending_uploads")
            self.save_template(dataset)
        return dataset

    def fresh(self) -> None:
        """Replace the working database with an empty, migrated one."""
        self._clone(self.schema, self.name)

    def save_template(self, dataset: str) -> None:
        """Keep the working database's current contents as ``dataset``."""
        self._clone(self.name, self.template(dataset))

    def restore(self, dataset: str, tables: tuple[str, ...] = ("pending_uploads",)) -> None:
        """Copy ``dataset`` into the working database, then VACUUM ANALYZE and warm ``tables``."""
        self._clone(self.template(dataset), self.name)
        self.settle(tables)

    def settle(self, tables: tuple[str, ...]) -> None:
        """VACUUM ANALYZE, read each table once (OS cache) and checkpoint before measuring."""
        with self.connect() as conn:
            for table in tables:
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            # So that no checkpoint from the load lands inside a measurement.
            with contextlib.suppress(psycopg.Error):
                conn.execute("CHECKPOINT")

    def server_info(self) -> dict[str, str]:
        with self.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        return {"server_version": version, "shared_buffers": buffers, "server": self.server.kind}

    def _clone(self, source: str, target: str) -> None:
        close_django_connections()
        with self.admin() as conn:
            strategy = sql.SQL("")
            if self._file_copy:
                size = conn.execute("SELECT pg_database_size(%s)", [source]).fetchone()[0]
                # Large copies: copy the files rather than write every page to the WAL.
                # Small ones: skip the two checkpoints FILE_COPY costs.
                if size > FILE_COPY_ABOVE_BYTES:
                    strategy = sql.SQL(" STRATEGY FILE_COPY")
            self._drop(conn, target)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                    sql.Identifier(target), sql.Identifier(source), strategy
                )
            )

    @staticmethod
    def _drop(conn: psycopg.Connection, name: str) -> None:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def django_setup(database_url: str) -> None:
    """Configure Django in this process against the working database, as production runs."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "molecule.settings"
    os.environ["DATABASE_URL"] = database_url
    # DEBUG off, as in production: with it on, Django records every query it runs.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    import django

    django.setup()


def close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
