"""The upload API through gunicorn (2 workers) beside the same database work done by raw psycopg."""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import loadgen
from bench.config import Scale
from bench.database import BenchDatabases
from bench.stats import ratio, summary

logger = logging.getLogger("bench")

# What uploads_receive writes, minus Django: the row and its activity entry, in one transaction.
RAW_INSERT_UPLOAD_SQL = """
INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype,
                             created_at, expires_at)
VALUES (%s, %s, %s, %s, 'application/octet-stream',
        clock_timestamp(), clock_timestamp() + interval '24 hours')
RETURNING file_id
"""
RAW_INSERT_ACTIVITY_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, method, summary, request_body, status)
VALUES (%s, 'a2a_receive', 'chat_upload_receive', %s, %s, 'ok')
"""
# open_chunks (1 MiB: one statement), then the bytes go back to the client. Read in binary, as
# the service reads them: psycopg's default text format would send bytea as hex, twice the
# bytes and a decode (for 1 MiB five to six times as long: 5.9 against 1.1 ms on an idle
# machine, 11.4 against 1.9 ms on a loaded one), a floor no better code would have.
RAW_FETCH_SQL = """
SELECT content, filename, mimetype, fetched_at FROM pending_uploads
 WHERE workspace_id = %s AND file_id = %s AND expires_at > now()
"""
# The floors for one large file: the whole value as one binary parameter, and as one binary
# result (what a driver does with no streaming at all).
RAW_INSERT_BIG_SQL = """
INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype,
                             created_at, expires_at)
VALUES (%s, %b, %s, 'big.bin', 'application/octet-stream',
        clock_timestamp(), clock_timestamp() + interval '24 hours')
RETURNING file_id
"""
RAW_FETCH_BIG_SQL = "SELECT content FROM pending_uploads WHERE file_id = %s"
RAW_DELETE_SQL = "DELETE FROM pending_uploads WHERE file_id = %s"
RAW_ACK_SQL = """
UPDATE pending_uploads SET acked_at = now()
 WHERE workspace_id = %s AND file_id = %s AND acked_at IS NULL AND expires_at > now()
"""

KIB = 1024
MIB = 1024 * 1024


def payload(size: int) -> bytes:
    """Incompressible bytes, as most attachments are (images, PDFs, archives), the same each run.

    A repeating pattern would let PostgreSQL's TOAST compression store a 1 MiB file in a few
    KiB, which no real upload does, and the figures would measure pglz instead of the path.
    """
    return random.Random(size).randbytes(size)


class ApiBench:
    def __init__(self, db: BenchDatabases, scale: Scale, port: int) -> None:
        self.db = db
        self.scale = scale
        self.port = port
        self.workspace_id, token = loadgen.register_workspace(port)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.prefix = f"/workspaces/{self.workspace_id}"
        self.ids: dict[str, list[uuid.UUID]] = {"api_1k": [], "raw_1k": [], "api_1m": []}

    def _run(self, operation: Any, endpoint: str, *, raw: bool) -> loadgen.Load:
        session = loadgen.pg_session(self.db.url) if raw else loadgen.http_session(self.port)
        close = loadgen.pg_close if raw else loadgen.http_close
        return loadgen.drive(
            session,
            close,
            operation,
            count=self.scale.api_requests[endpoint],
            concurrency=self.scale.api_concurrency,
            seconds=self.scale.api_seconds,
        )

    def api_upload(self, size: int, keep: str | None) -> Any:
        body, content_type = loadgen.multipart(f"bench-{size}.bin", payload(size))
        headers = {**self.auth, "Content-Type": content_type}

        def operation(conn: Any, number: int) -> list[uuid.UUID] | None:
            data = loadgen.http_call(
                conn, "POST", f"{self.prefix}/chat/uploads", body=body, headers=headers
            )
            return loadgen.file_ids(data) if keep else None

        return operation

    def raw_upload(self, size: int, keep: str | None) -> Any:
        content = payload(size)
        filename = f"bench-{size}.bin"

        def operation(conn: psycopg.Connection, number: int) -> list[uuid.UUID] | None:
            with conn.transaction():
                file_id = conn.execute(
                    RAW_INSERT_UPLOAD_SQL, [self.workspace_id, content, size, filename]
                ).fetchone()[0]
                body = {"file_id": str(file_id), "name": filename, "size": size}
                conn.execute(
                    RAW_INSERT_ACTIVITY_SQL,
                    [self.workspace_id, f"chat_upload_receive: {filename}", Jsonb(body)],
                )
            return [file_id] if keep else None

        return operation

    def api_fetch(self) -> Any:
        ids = self.ids["api_1m"]

        def operation(conn: Any, number: int) -> None:
            file_id = ids[number % len(ids)]
            data = loadgen.http_call(
                conn, "GET", f"{self.prefix}/pending-uploads/{file_id}/content", headers=self.auth
            )
            if len(data) != MIB:
                raise loadgen.HttpError(f"fetched {len(data)} bytes, expected {MIB}")

        return operation

    def raw_fetch(self) -> Any:
        ids = self.ids["api_1m"]

        def operation(conn: psycopg.Connection, number: int) -> None:
            row = conn.execute(
                RAW_FETCH_SQL, [self.workspace_id, ids[number % len(ids)]], binary=True
            ).fetchone()
            if row is None or len(row[0]) != MIB:
                raise RuntimeError("raw fetch found no 1 MiB row")

        return operation

    def api_ack(self, ids: list[uuid.UUID]) -> Any:
        def operation(conn: Any, number: int) -> None:
            loadgen.http_call(
                conn, "POST", f"{self.prefix}/pending-uploads/{ids[number]}/ack", headers=self.auth
            )

        return operation

    def raw_ack(self, ids: list[uuid.UUID]) -> Any:
        def operation(conn: psycopg.Connection, number: int) -> None:
            if conn.execute(RAW_ACK_SQL, [self.workspace_id, ids[number]]).rowcount != 1:
                raise RuntimeError("raw ack updated no row")

        return operation

    def big_file(self) -> dict[str, Any]:
        """One large file, sequentially: API upload/fetch against raw INSERT/SELECT, in MiB/s."""
        size = self.scale.big_file_bytes
        content = payload(size)
        body, content_type = loadgen.multipart("big.bin", content)
        headers = {**self.auth, "Content-Type": content_type}
        seconds: dict[str, list[float]] = {
            "api_upload": [],
            "raw_upload": [],
            "api_fetch": [],
            "raw_fetch": [],
        }
        http = loadgen.http_session(self.port)()
        raw = psycopg.connect(self.db.url, autocommit=True)
        try:
            for _rep in range(self.scale.big_file_reps):
                started = time.perf_counter()
                data = loadgen.http_call(
                    http, "POST", f"{self.prefix}/chat/uploads", body=body, headers=headers
                )
                seconds["api_upload"].append(time.perf_counter() - started)
                file_id = loadgen.file_ids(data)[0]
                started = time.perf_counter()
                raw_id = raw.execute(RAW_INSERT_BIG_SQL, [self.workspace_id, content, size])
                raw_id = raw_id.fetchone()[0]
                seconds["raw_upload"].append(time.perf_counter() - started)
                path = f"{self.prefix}/pending-uploads/{file_id}/content"
                started = time.perf_counter()
                served = loadgen.http_call(http, "GET", path, headers=self.auth)
                seconds["api_fetch"].append(time.perf_counter() - started)
                started = time.perf_counter()
                value = raw.execute(RAW_FETCH_BIG_SQL, [raw_id], binary=True).fetchone()[0]
                seconds["raw_fetch"].append(time.perf_counter() - started)
                if served != content or value != content:
                    raise RuntimeError("a large file came back different")
                del served, value
                for done in (file_id, raw_id):
                    raw.execute(RAW_DELETE_SQL, [done])
                logger.info("api big file: %s", {k: round(v[-1], 3) for k, v in seconds.items()})
        finally:
            http.close()
            raw.close()
        mib = size / MIB
        rates = {key: [mib / value for value in values] for key, values in seconds.items()}
        figure: dict[str, Any] = {"file_mib": mib, "reps": self.scale.big_file_reps}
        for operation in ("upload", "fetch"):
            api = summary(rates[f"api_{operation}"], 1)
            floor = summary(rates[f"raw_{operation}"], 1)
            figure[operation] = {
                "api_mib_s": api,
                "raw_mib_s": floor,
                "ratio": ratio(api["median"], floor["median"]),
            }
        return figure

    def endpoint(self, endpoint: str) -> dict[str, Any]:
        """Alternate API and raw repetitions of one endpoint; return both and their ratio."""
        runs: dict[str, list[dict[str, Any]]] = {"api": [], "raw": []}
        errors: dict[str, str] = {}
        for _rep in range(self.scale.api_reps):
            for side in ("api", "raw"):
                operation = self._operation(endpoint, side)
                load = self._run(operation, endpoint, raw=side == "raw")
                self._keep(endpoint, side, load)
                runs[side].append(load.figures())
                if load.first_error:
                    errors[side] = load.first_error
                logger.info("api %s %s: %s", endpoint, side, runs[side][-1])
        figure: dict[str, Any] = {}
        for side, side_runs in runs.items():
            figure[side] = {
                "rps": summary([run["rps"] for run in side_runs if run["rps"]], 1),
                "p50_ms": summary([run["p50_ms"] for run in side_runs if run["p50_ms"]], 2),
                "p99_ms": summary([run["p99_ms"] for run in side_runs if run["p99_ms"]], 2),
                "requests": sum(run["requests"] for run in side_runs),
                "errors": sum(run["errors"] for run in side_runs),
            }
        # Throughput API : raw (the target for fetch_1m is >= 0.5).
        figure["ratio"] = ratio(figure["api"]["rps"]["median"], figure["raw"]["rps"]["median"])
        if errors:
            figure["first_errors"] = errors
        return figure

    def _operation(self, endpoint: str, side: str) -> Any:
        if endpoint == "upload_1k":
            keep = "api_1k" if side == "api" else "raw_1k"
            return self.api_upload(KIB, keep) if side == "api" else self.raw_upload(KIB, keep)
        if endpoint == "upload_1m":
            keep = "api_1m" if side == "api" else None
            return self.api_upload(MIB, keep) if side == "api" else self.raw_upload(MIB, keep)
        if endpoint == "fetch_1m":
            return self.api_fetch() if side == "api" else self.raw_fetch()
        # Each ack needs a row of its own: take the next unused ids.
        pool = self.ids["api_1k" if side == "api" else "raw_1k"]
        count = min(self.scale.api_requests["ack"], len(pool))
        taken, self.ids["api_1k" if side == "api" else "raw_1k"] = pool[:count], pool[count:]
        return self.api_ack(taken) if side == "api" else self.raw_ack(taken)

    def _keep(self, endpoint: str, side: str, load: loadgen.Load) -> None:
        if endpoint in ("upload_1k", "upload_1m") and load.results:
            key = {"upload_1k": {"api": "api_1k", "raw": "raw_1k"}, "upload_1m": {"api": "api_1m"}}
            target = key[endpoint].get(side)
            if target:
                self.ids[target].extend(itertools.chain.from_iterable(load.results))


def bench_api(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    with loadgen.served(db, "api") as port:
        bench = ApiBench(db, scale, port)
        figures = {
            name: bench.endpoint(name) for name in ("upload_1k", "upload_1m", "fetch_1m", "ack")
        }
        figures["big_file"] = bench.big_file()
    figures["setup"] = {
        "web_workers": 2,
        "concurrency": scale.api_concurrency,
        "client": "threads with http.client on loopback, one connection each (closed loop)",
        "raw": "psycopg 3, one connection per thread, autocommit, results in binary (bytea as "
        "bytes, as the service reads it)",
        "big_file": "one client, one at a time: API upload, raw INSERT, API fetch, raw SELECT",
    }
    return {"api": figures}
