"""The scenarios: polls, acks of uploads and of the feed, and a large file up and down."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from bench import loadgen
from bench.api import payload
from bench.config import Scale
from bench.database import BenchDatabases
from bench.stats import Stopwatch, ratio, summary
from bench.throughput.rates import Call
from bench.throughput.seed import (
    PAGE_ROWS,
    SEED_ACTIVITY_SQL,
    SEED_UPLOADS_SQL,
    make_workspaces,
)
from bench.throughput.servers import PROTOTYPE, SIDES, get

logger = logging.getLogger("bench")

MIB = 1024 * 1024
# Few enough rows that every run acks each one (later rounds are repeated acks, which the
# runtime sends too and which rewrite the row the same way): "applied" can be checked exactly.
ACK_ROWS = 200
ACK_WORKSPACES = 32


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
