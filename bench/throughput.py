"""Service against its floor, per hot path, in one run: polls, acks, a large upload and fetch.

Both run under gunicorn with gunicorn.conf.py's settings (2 workers x 16 threads), on the same
database, side by side: the service (``molecule.wsgi``) and the floor (``bench.floor``, plain
WSGI on psycopg running the service's statements). Request rates come from wrk (2 threads, 16
connections), the sides alternating, repeated; the large file goes one at a time on one
connection, the sides alternating too. The head poll also runs against ``bench.cached_poll``,
the service with a cache that never misses: the prototype on the path to 1.0x.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.api import payload
from bench.config import Scale
from bench.database import BenchDatabases
from bench.stats import Stopwatch, ratio, summary

logger = logging.getLogger("bench")

MIB = 1024 * 1024
WRK = shutil.which("wrk") or "/usr/bin/wrk"
WRK_THREADS = 2
WRK_CONNECTIONS = 16
# Long enough that a request slowed by a busy machine is measured rather than counted as an
# error (wrk's default is 2 s); the timeouts are reported apart from the errors.
WRK_TIMEOUT = "10s"
# The runtime polls every POLL_INTERVAL_SECONDS: what one host carries follows from the rate.
POLL_INTERVAL_SECONDS = 5
# The page poll returns this many upload rows (a burst of files), with include=peer_info.
PAGE_ROWS = 10
# Few enough rows that every run acks each one (later rounds are repeated acks, which the
# runtime sends too and which rewrite the row the same way): "applied" can be checked exactly.
ACK_ROWS = 200
ACK_WORKSPACES = 32
SIDES = ("service", "floor")
PROTOTYPE = "prototype"
APPS = {
    "service": ("molecule.wsgi:application", "/metrics"),
    "floor": ("bench.floor:application", "/ready"),
    PROTOTYPE: ("bench.cached_poll:application", "/metrics"),
}

# Rows as uploads_receive writes them: a canvas row addressed to the workspace, the manifest in
# request_body.
SEED_ACTIVITY_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method, summary,
                           request_body, status)
SELECT %(workspace)s, 'a2a_receive', NULL, %(workspace)s, 'chat_upload_receive',
       'chat_upload_receive: file-' || n || '.png',
       jsonb_build_object('file_id', gen_random_uuid(), 'uri', 'platform-pending:x/' || n,
                          'name', 'file-' || n || '.png', 'mimeType', 'image/png',
                          'size', 1000 + n),
       'ok'
  FROM generate_series(0, %(rows)s) AS n
RETURNING id
"""
SEED_UPLOADS_SQL = """
INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype)
SELECT %(workspace)s, %(content)s, length(%(content)s), 'ack-' || n || '.bin', 'text/plain'
  FROM generate_series(1, %(rows)s) AS n
RETURNING file_id
"""
SEED_WORKSPACE_SQL = """
INSERT INTO workspaces (id, name, delivery_mode, token_hash) VALUES (%s, %s, 'poll', %s)
"""
ACKED_SQL = "SELECT count(*) FROM pending_uploads WHERE file_id = ANY(%s) AND acked_at IS NOT NULL"
INBOX_MARKS_SQL = (
    "SELECT count(*) FROM inbox_delivery_state WHERE workspace_id = ANY(%s) AND last_acked_seq > 0"
)

# wrk's script: cycle through (method, path, token, body) and print the summary as JSON.
WRK_SCRIPT = """
local calls = %(calls)s
local n = 0
request = function()
  n = n + 1
  local call = calls[(n %% #calls) + 1]
  local body = call[4]
  local headers = {["Authorization"] = "Bearer " .. call[3]}
  if body ~= nil then
    body = string.gsub(body, "@N", tostring(n))
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(call[1], call[2], headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "status_errors": %%d, "socket_errors": %%d, ' ..
    '"timeouts": %%d, "p50_ms": %%f, "p99_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""

Call = tuple[str, str, str, str | None]


def _lua(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str):
        return json.dumps(value)
    return "{" + ", ".join(_lua(item) for item in value) + "}"


def wrk(port: int, calls: list[Call], seconds: float) -> dict[str, Any]:
    """One wrk run against 127.0.0.1:``port``; its summary (rate, errors, p50, p99)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"calls": _lua(calls)})
    try:
        done = subprocess.run(
            [
                WRK,
                f"-t{WRK_THREADS}",
                f"-c{WRK_CONNECTIONS}",
                f"-d{seconds:g}s",
                f"--timeout={WRK_TIMEOUT}",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    finally:
        os.unlink(script.name)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def get(port: int, path: str, token: str) -> bytes:
    conn = loadgen.http_session(port)()
    try:
        return loadgen.http_call(conn, "GET", path, headers={"Authorization": f"Bearer {token}"})
    finally:
        conn.close()


@contextlib.contextmanager
def servers(db: BenchDatabases) -> Iterator[dict[str, int]]:
    """Every app of APPS under the same gunicorn settings, on one fresh database: their ports."""
    from devtools.processes import ServiceStack

    db.fresh()
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-throughput."))
    stacks = {
        name: ServiceStack(
            database_url=db.url,
            metrics_dir=scratch / f"{name}-metrics",
            web_workers=2,
            log_dir=scratch / name,
            wsgi_app=app,
            ready_path=ready,
        )
        for name, (app, ready) in APPS.items()
    }
    try:
        for stack in stacks.values():
            stack.start(web=True, qcluster=False)
        yield {name: stack.port for name, stack in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def make_workspaces(db: BenchDatabases, count: int, prefix: str) -> list[tuple[uuid.UUID, str]]:
    """Poll-mode workspaces made in SQL, with their bearer tokens."""
    made = []
    with db.connect() as conn:
        for number in range(count):
            workspace_id, token = uuid.uuid4(), uuid.uuid4().hex + uuid.uuid4().hex
            digest = hashlib.sha256(token.encode()).hexdigest()
            conn.execute(SEED_WORKSPACE_SQL, [workspace_id, f"{prefix}-{number}", digest])
            made.append((workspace_id, token))
    return made


def measure_rates(
    ports: dict[str, int], calls: dict[str, list[Call]], scale: Scale
) -> dict[str, Any]:
    """wrk on every side of ``calls``, the order rotating each repetition; the figure."""
    names = list(calls)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for rep in range(scale.throughput_reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            run = wrk(ports[name], calls[name], scale.throughput_seconds)
            runs[name].append(run)
            logger.info("throughput %s: %.0f req/s %s", name, run["rps"], json.dumps(run))
    figure: dict[str, Any] = {}
    for name, side_runs in runs.items():
        figure[name] = {
            "rps": summary([run["rps"] for run in side_runs], 1),
            "p50_ms": summary([run["p50_ms"] for run in side_runs], 2),
            "p99_ms": summary([run["p99_ms"] for run in side_runs], 2),
            "requests": sum(run["requests"] for run in side_runs),
            "errors": sum(run["status_errors"] + run["socket_errors"] for run in side_runs),
            "timeouts": sum(run["timeouts"] for run in side_runs),
            "load_average": [run["load_average"] for run in side_runs],
        }
    floor = figure["floor"]["rps"]["median"]
    figure["ratio"] = ratio(figure["service"]["rps"]["median"], floor)
    # Each repetition's own ratio (the two ran back to back): how much the noise moves it.
    figure["ratios"] = [
        ratio(s["rps"], f["rps"]) for s, f in zip(runs["service"], runs["floor"], strict=True)
    ]
    if PROTOTYPE in figure:
        figure["prototype_ratio"] = ratio(figure[PROTOTYPE]["rps"]["median"], floor)
    return figure


def poll_scenarios(db: BenchDatabases, ports: dict[str, int]) -> dict[str, Any]:
    """The runtime's poll at the head (an empty page) and PAGE_ROWS rows behind it."""
    [(workspace, token)] = make_workspaces(db, 1, "poller")
    with db.connect() as conn:
        seeded = conn.execute(SEED_ACTIVITY_SQL, {"workspace": workspace, "rows": PAGE_ROWS})
        ids = sorted(row[0] for row in seeded.fetchall())
    base = f"/workspaces/{workspace}/activity?type=a2a_receive&include=peer_info&since_id="
    paths = {"head_poll": base + str(ids[-1]), "page_poll": base + str(ids[0])}
    found = {}
    for name, path in paths.items():
        sides = [*SIDES, PROTOTYPE] if name == "head_poll" else list(SIDES)
        answers = {side: get(ports[side], path, token) for side in sides}
        found[name] = {
            # Byte for byte the same JSON: the floor does the service's work, no less.
            "same_answer": len(set(answers.values())) == 1,
            "rows": len(json.loads(answers["service"])),
            "calls": {side: [("GET", path, token, None)] for side in sides},
        }
    return found


def ack_calls(db: BenchDatabases) -> tuple[dict[str, list[Call]], dict[str, list[uuid.UUID]]]:
    """Acks of pending uploads, each side its own ACK_ROWS rows, cycled."""
    calls: dict[str, list[Call]] = {}
    rows: dict[str, list[uuid.UUID]] = {}
    for side in SIDES:
        [(workspace, token)] = make_workspaces(db, 1, f"acker-{side}")
        with db.connect() as conn:
            seeded = conn.execute(
                SEED_UPLOADS_SQL, {"workspace": workspace, "content": b"x" * 1024, "rows": ACK_ROWS}
            )
            rows[side] = [row[0] for row in seeded.fetchall()]
        calls[side] = [
            ("POST", f"/workspaces/{workspace}/pending-uploads/{file_id}/ack", token, None)
            for file_id in rows[side]
        ]
    return calls, rows


def inbox_ack_calls(
    db: BenchDatabases,
) -> tuple[dict[str, list[Call]], dict[str, list[uuid.UUID]]]:
    """The runtime's activity ack: ACK_WORKSPACES workspaces per side, each moving its mark."""
    calls: dict[str, list[Call]] = {}
    made: dict[str, list[uuid.UUID]] = {}
    for side in SIDES:
        workspaces = make_workspaces(db, ACK_WORKSPACES, f"inbox-{side}")
        made[side] = [workspace for workspace, _ in workspaces]
        calls[side] = [
            ("POST", f"/workspaces/{workspace}/activity/ack", token, '{"acked_seq":@N}')
            for workspace, token in workspaces
        ]
    return calls, made


def applied(db: BenchDatabases, sql: str, keys: dict[str, list[uuid.UUID]]) -> dict[str, int]:
    with db.connect() as conn:
        return {side: conn.execute(sql, [keys[side]]).fetchone()[0] for side in keys}


def large_file(db: BenchDatabases, ports: dict[str, int], scale: Scale) -> dict[str, Any]:
    """One large file up and down, one at a time, sides alternating; MiB/s and the bytes back."""
    size = scale.throughput_file_bytes
    content = payload(size)
    digest = hashlib.sha256(content).hexdigest()
    body, content_type = loadgen.multipart("big.bin", content)
    seconds: dict[str, dict[str, list[float]]] = {
        op: {side: [] for side in SIDES} for op in ("upload", "fetch")
    }
    intact = dict.fromkeys(SIDES, True)
    owners = dict(zip(SIDES, make_workspaces(db, len(SIDES), "large"), strict=True))
    for rep in range(scale.throughput_file_reps):
        for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
            workspace, token = owners[side]
            auth = {"Authorization": f"Bearer {token}"}
            conn = loadgen.http_session(ports[side])()
            try:
                clock = Stopwatch()
                answer = loadgen.http_call(
                    conn,
                    "POST",
                    f"/workspaces/{workspace}/chat/uploads",
                    body=body,
                    headers={**auth, "Content-Type": content_type},
                )
                seconds["upload"][side].append(clock.seconds)
                [file_id] = loadgen.file_ids(answer)
                path = f"/workspaces/{workspace}/pending-uploads/{file_id}/content"
                clock = Stopwatch()
                served = loadgen.http_call(conn, "GET", path, headers=auth)
                seconds["fetch"][side].append(clock.seconds)
            finally:
                conn.close()
            intact[side] = intact[side] and hashlib.sha256(served).hexdigest() == digest
            del served
            with db.connect() as raw:
                raw.execute("DELETE FROM pending_uploads WHERE file_id = %s", [file_id])
            logger.info(
                "throughput large file %s: upload %.3f s, fetch %.3f s",
                side,
                seconds["upload"][side][-1],
                seconds["fetch"][side][-1],
            )
    mib = size / MIB
    figure: dict[str, Any] = {"file_mib": mib, "reps": scale.throughput_file_reps}
    for op, by_side in seconds.items():
        rates = {side: summary([mib / s for s in values], 1) for side, values in by_side.items()}
        figure[op] = {
            "service_mib_s": rates["service"],
            "floor_mib_s": rates["floor"],
            "ratio": ratio(rates["service"]["median"], rates["floor"]["median"]),
        }
    # The bytes fetched are the bytes uploaded, through each side.
    figure["bytes_intact"] = intact
    return figure


def bench_throughput(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    load_start = os.getloadavg()
    with servers(db) as ports:
        figure: dict[str, Any] = {}
        for name, poll in poll_scenarios(db, ports).items():
            calls = poll.pop("calls")
            figure[name] = {**measure_rates(ports, calls, scale), **poll}
        for name, (make, sql) in {
            "ack": (ack_calls, ACKED_SQL),
            "activity_ack": (inbox_ack_calls, INBOX_MARKS_SQL),
        }.items():
            calls, keys = make(db)
            figure[name] = measure_rates(ports, calls, scale)
            # Every row (every workspace's mark) the run cycled through was acked, on each side.
            figure[name]["applied"] = applied(db, sql, keys)
            figure[name]["expected"] = len(calls["service"])
        figure["large_file"] = large_file(db, ports, scale)
    head = figure["head_poll"]["service"]["rps"]["median"]
    figure["setup"] = {
        "servers": "gunicorn with gunicorn.conf.py: 2 workers x 16 threads (gthread), each",
        "client": f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}, {scale.throughput_seconds:g} s "
        f"per run, {scale.throughput_reps} runs per side, sides alternating",
        "page_rows": PAGE_ROWS,
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    # Every idle workspace polls once per interval: the head-poll rate carries this many, with
    # the host doing nothing else.
    figure["workspaces_per_host"] = round(head * POLL_INTERVAL_SECONDS) if head else None
    return {"throughput": figure}
