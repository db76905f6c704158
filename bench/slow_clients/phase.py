"""One run: the slow clients in a child process, and the poller timing polls meanwhile."""

from __future__ import annotations

import multiprocessing
import ssl
import time
from typing import Any

from bench.slow_clients.peaks import NginxPeaks
from bench.slow_clients.scale import KIB, SlowScale
from bench.slow_crowd import HOST, ClientsSpec, clients_main
from bench.stats import percentile

POLL_INTERVAL = 0.1
POLL_TIMEOUT = 30.0
# Every slow client's whole run is bounded: past this the child is killed and the run fails.
CHILD_GRACE = 120.0


def _poll_once(port: int, cert: str | None, path: str, token: str) -> float:
    import http.client

    started = time.perf_counter()
    if cert:
        context = ssl.create_default_context(cafile=cert)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            HOST, port, context=context, timeout=POLL_TIMEOUT
        )
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=POLL_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Host": "localhost"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"poll answered {response.status}")
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000


def run_phase(
    *,
    finish_spread: float,
    port: int,
    cert: str | None,
    uploads: int,
    slow: SlowScale,
    poller: tuple[str, str],
    uploader: tuple[str, str],
    drips: int | None = None,
    readers: int = 0,
    file_id: str = "",
    proxy: Any = None,
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    events = {"connected": context.Event(), "body_sent": context.Event()}
    results = context.Queue()
    spec = ClientsSpec(
        port=port,
        cert=cert,
        workspace_id=uploader[0],
        token=uploader[1],
        uploads=uploads,
        drips=slow.dripping_headers if drips is None else drips,
        rate=slow.rate_bytes_per_s,
        seconds=slow.seconds,
        stagger=slow.stagger_seconds,
        finish_spread=finish_spread,
        uploads_per_address=conn_limit("molecule_upload_bodies"),
        readers_per_address=conn_limit("molecule_downloads"),
        readers=readers,
        file_id=file_id,
    )
    peaks = NginxPeaks(proxy)
    child = context.Process(target=clients_main, args=(spec, events, results), daemon=True)
    child.start()
    path = f"/workspaces/{poller[0]}/activity"
    # Uploads: trickling, then finishing once bodies are complete. Readers: spooling while
    # gunicorn sends the answers into nginx, then reading while only the readers are left.
    phases: dict[str, list[float]] = (
        {"spooling": [], "reading": []} if readers else {"trickling": [], "finishing": []}
    )
    worst_at = (0.0, 0.0)
    errors: list[str] = []
    deadline = time.monotonic() + slow.seconds + finish_spread + CHILD_GRACE
    try:
        if not events["connected"].wait(60):
            raise RuntimeError("slow clients did not connect within 60 s")
        connected_at = time.monotonic()
        peaks.sample()
        while child.is_alive() and time.monotonic() < deadline:
            if readers:
                into = phases["spooling" if peaks.spooling() else "reading"]
            else:
                into = phases["finishing" if events["body_sent"].is_set() else "trickling"]
            try:
                into.append(_poll_once(port, cert, path, poller[1]))
                worst_at = max(worst_at, (into[-1], time.monotonic() - connected_at))
            except Exception as exc:
                errors.append(repr(exc))
            peaks.sample()
            time.sleep(POLL_INTERVAL)
        child.join(5)
        outcome = results.get(timeout=5)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    polls = [ms for phase in phases.values() for ms in phase]
    return {
        "uploads": uploads,
        "dripping_headers": spec.drips,
        "slow_readers": readers,
        "rate_kib_s": slow.rate_bytes_per_s // KIB,
        "upload_seconds": slow.seconds,
        "finish_spread_seconds": finish_spread,
        "polls": len(polls),
        "worst_poll_ms": round(max(polls), 1) if polls else None,
        # Seconds after every client had connected, to line the worst poll up with the logs.
        "worst_poll_at_s": round(worst_at[1], 1),
        "p50_poll_ms": percentile(polls, 50),
        "p99_poll_ms": percentile(polls, 99),
        **{
            f"worst_poll_while_{phase}_ms": round(max(polled), 1) if polled else None
            for phase, polled in phases.items()
        },
        "poll_errors": len(errors),
        "first_poll_errors": errors[:3],
        **peaks.figures(),
        **outcome,
    }


def conn_limit(zone: str) -> int:
    from devtools.processes.nginx import site_conn_limit

    return site_conn_limit(zone)
