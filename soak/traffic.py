"""The client threads: register, upload, list, fetch and ack, recording every answer."""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import multipart_files
from soak.config import (
    FILENAMES,
    HEARTBEAT_EVERY,
    MAX_CLIENT_ITERATIONS,
    MAX_WORKSPACES_PER_CLIENT,
    MIMETYPES,
    NEW_WORKSPACE_EVERY,
    REQUEST_TIMEOUT,
)


@dataclass
class Stats:
    """Every answer the clients got, and everything that was not what it should have been."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    transport_errors: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    # Crashes of the driver's own threads: a soak that lost a client proves less.
    driver_errors: list[str] = field(default_factory=list)

    def answer(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[endpoint, status] += 1
            self.latencies.setdefault(endpoint, []).append(seconds)

    def transport_error(self, endpoint: str, exc: BaseException) -> None:
        with self.lock:
            self.transport_errors[endpoint] += 1
            self._example(f"{endpoint}: {type(exc).__name__}: {exc}")

    def problem(self, kind: str, detail: str) -> None:
        with self.lock:
            self.problems[kind] += 1
            self._example(f"{kind}: {detail}")

    def _example(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)

    def count(self, *, status_from: int = 0, status_to: int = 1000) -> int:
        with self.lock:
            return sum(n for (_, s), n in self.statuses.items() if status_from <= s < status_to)


@dataclass
class Ledger:
    """The uploads the clients created, when, and what became of them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: set[uuid.UUID] = field(default_factory=set)
    created_at: list[float] = field(default_factory=list)
    acked: int = 0
    abandoned: int = 0
    workspaces: int = 0

    def add(self, file_ids: list[uuid.UUID]) -> None:
        now = time.monotonic()
        with self.lock:
            self.created.update(file_ids)
            self.created_at.extend([now] * len(file_ids))

    def created_between(self, start: float, end: float) -> int:
        with self.lock:
            times = sorted(self.created_at)
        return bisect_right(times, end) - bisect_left(times, start)


@dataclass(frozen=True)
class Sample:
    at: float
    rows: int
    acked_rows: int
    expired_rows: int
    total_bytes: int
    # The statistics collector's estimate of dead row versions awaiting vacuum.
    dead_rows: int


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A tiny loopback HTTP client that records every answer in Stats."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.port = port
        self.stats = stats

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer | None:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.stats.transport_error(endpoint, exc)
            return None
        finally:
            conn.close()
        self.stats.answer(endpoint, response.status, time.monotonic() - started)
        if response.status >= 500:
            self.stats.problem("5xx", f"{method} {path} -> {response.status} {data[:200]!r}")
        return Answer(response.status, data)

    def expect(self, endpoint: str, method: str, path: str, **kwargs: Any) -> Answer | None:
        """Call and return the answer when it is 200; record anything else as a problem."""
        answer = self.call(endpoint, method, path, **kwargs)
        if answer is None:
            return None
        if answer.status != 200:
            if answer.status < 500:
                self.stats.problem(
                    "unexpected status", f"{method} {path} -> {answer.status} {answer.body[:200]!r}"
                )
            return None
        return answer


@dataclass(frozen=True)
class ClientWorkspace:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def workspace_register(api: Api, label: str) -> ClientWorkspace | None:
    workspace_id = str(uuid.uuid4())
    body = {"id": workspace_id, "delivery_mode": "poll", "agent_card": {"name": label}}
    answer = api.expect(
        "register",
        "POST",
        "/registry/register",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if answer is None:
        return None
    return ClientWorkspace(workspace_id, answer.json()["auth_token"])


def client_loop(
    number: int,
    api: Api,
    ledger: Ledger,
    deadline: float,
    options: argparse.Namespace,
) -> None:
    """One client: register poll workspaces, then upload, list, fetch and ack until the deadline."""
    # Reproducible traffic, not secrets.
    rng = random.Random(options.seed * 1000 + number)  # noqa: S311
    workspaces: list[ClientWorkspace] = []
    for iteration in range(MAX_CLIENT_ITERATIONS):
        if time.monotonic() >= deadline:
            break
        if not workspaces or (
            iteration % NEW_WORKSPACE_EVERY == 0 and len(workspaces) < MAX_WORKSPACES_PER_CLIENT
        ):
            ws = workspace_register(api, f"soak-{number}-{len(workspaces)}")
            if ws is not None:
                workspaces.append(ws)
                with ledger.lock:
                    ledger.workspaces += 1
            if not workspaces:
                time.sleep(0.5)
            continue
        ws = rng.choice(workspaces)
        files = [
            (
                rng.choice(FILENAMES),
                rng.choice(MIMETYPES),
                rng.randbytes(rng.randint(1, options.max_file_bytes)),
            )
            for _ in range(rng.randint(1, 3))
        ]
        body, content_type = multipart_files(files)
        answer = api.expect(
            "upload",
            "POST",
            f"/workspaces/{ws.id}/chat/uploads",
            body=body,
            headers={**ws.auth, "Content-Type": content_type},
        )
        if answer is not None:
            uploaded = [uuid.UUID(f["uri"].rsplit("/", 1)[1]) for f in answer.json()["files"]]
            ledger.add(uploaded)
            upload_handle(api, ws, ledger, rng, options, uploaded, [data for _, _, data in files])
        if iteration % HEARTBEAT_EVERY == 0:
            heartbeat = {
                "workspace_id": ws.id,
                "active_tasks": rng.randint(0, 3),
                "current_task": "soak",
            }
            api.expect(
                "heartbeat",
                "POST",
                "/registry/heartbeat",
                body=json.dumps(heartbeat).encode(),
                headers={**ws.auth, "Content-Type": "application/json"},
            )
        if options.think_ms:
            time.sleep(rng.uniform(0, 2 * options.think_ms) / 1000)


def upload_handle(
    api: Api,
    ws: ClientWorkspace,
    ledger: Ledger,
    rng: random.Random,
    options: argparse.Namespace,
    uploaded: list[uuid.UUID],
    contents: list[bytes],
) -> None:
    """List the new files, then fetch and ack all but the ones left never fetched."""
    listing = api.expect("list", "GET", f"/workspaces/{ws.id}/pending-uploads", headers=ws.auth)
    if listing is not None:
        listed = {uuid.UUID(row["file_id"]) for row in listing.json()}
        for file_id in set(uploaded) - listed:
            api.stats.problem("missing from list", f"{file_id} of workspace {ws.id}")
    for file_id, data in zip(uploaded, contents, strict=True):
        if rng.random() < options.unfetched:
            with ledger.lock:
                ledger.abandoned += 1
            continue
        base = f"/workspaces/{ws.id}/pending-uploads/{file_id}"
        fetched = api.expect("fetch", "GET", f"{base}/content", headers=ws.auth)
        if fetched is not None and fetched.body != data:
            api.stats.problem(
                "content mismatch", f"{file_id}: {len(fetched.body)} != {len(data)} bytes"
            )
        if api.expect("ack", "POST", f"{base}/ack", headers=ws.auth) is not None:
            with ledger.lock:
                ledger.acked += 1


# --- background threads: sampler and sweep enqueuer ---------------------------------------
