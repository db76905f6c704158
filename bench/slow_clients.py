"""Slow clients: the worst workspace poll while uploads trickle in and headers drip, and while
downloads are read slowly through nginx (the penetration test of issue 19).

gunicorn runs exactly as gunicorn.conf.py configures it. The slow clients live in a child
process (one asyncio loop), so their sends never compete with the poller for this process's
GIL; the poller opens a new connection for every poll, as a fresh client would.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import ssl
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.config import Scale
from bench.database import BenchDatabases
from bench.slow_crowd import HOST, ClientsSpec, clients_main
from bench.stats import percentile

logger = logging.getLogger("bench")

KIB = 1024
MIB = 1024 * 1024
POLL_INTERVAL = 0.1
POLL_TIMEOUT = 30.0
# Every slow client's whole run is bounded: past this the child is killed and the run fails.
CHILD_GRACE = 120.0
# nginx's temporary files still growing (by more than a reader's reads) within this long:
# gunicorn is still sending the downloads' answers.
SPOOL_SETTLED_SECONDS = 0.5
SPOOL_NOISE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SlowScale:
    direct_uploads: int
    nginx_uploads: int
    dripping_headers: int
    rate_bytes_per_s: int
    seconds: float
    # Connections open over this long, so 200 clients do not arrive as one SYN burst.
    stagger_seconds: float
    # Client n trickles n/N of this longer, so bodies complete spread out as real ones do;
    # every client is still connected at once for ``seconds``.
    finish_spread_seconds: float
    # Downloads of one file read 512 bytes every 2 s through nginx, each for ``seconds``,
    # spread over loopback addresses at the shipped per-address limit.
    slow_readers: int
    reader_file_bytes: int


SCALES = {
    "full": SlowScale(10, 200, 4, 50 * KIB, 10.0, 1.0, 10.0, 64, 16 * MIB),
    "quick": SlowScale(4, 20, 2, 50 * KIB, 1.0, 0.1, 1.0, 16, 2 * MIB),
}


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


class NginxPeaks:
    """The most nginx's workers held while the clients were connected: memory, temp files.

    Also tells when the downloads' answers have all reached nginx: its temporary files stop
    growing, and from then on gunicorn has nothing left to send the readers.
    """

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self.rss_before = proxy.workers_rss_bytes() if proxy else 0
        self.rss_peak = self.rss_before
        self.temp_bytes = {"proxy": 0, "client_body": 0}
        self._spooled = 0
        self._spool_changed_at = time.monotonic()

    def sample(self) -> None:
        if self.proxy is None:
            return
        self.rss_peak = max(self.rss_peak, self.proxy.workers_rss_bytes())
        for area, peak in self.temp_bytes.items():
            self.temp_bytes[area] = max(peak, self.proxy.temp_file_bytes(area))
        spooled = self.proxy.temp_file_bytes("proxy")
        if abs(spooled - self._spooled) > SPOOL_NOISE_BYTES:
            self._spooled, self._spool_changed_at = spooled, time.monotonic()

    def spooling(self) -> bool:
        return time.monotonic() - self._spool_changed_at < SPOOL_SETTLED_SECONDS

    def figures(self) -> dict[str, Any]:
        if self.proxy is None:
            return {}
        return {
            # Over the workers' RSS when the run started (they keep what earlier runs grew).
            "nginx_rss_before_mib": round(self.rss_before / MIB, 1),
            "nginx_rss_growth_peak_mib": round((self.rss_peak - self.rss_before) / MIB, 1),
            "proxy_temp_peak_mib": round(self.temp_bytes["proxy"] / MIB, 1),
            "client_body_temp_peak_mib": round(self.temp_bytes["client_body"] / MIB, 1),
        }


def _run(
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
        uploads_per_address=_conn_limit("molecule_upload_bodies"),
        readers_per_address=_conn_limit("molecule_downloads"),
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


def _conn_limit(zone: str) -> int:
    from devtools.processes.nginx import site_conn_limit

    return site_conn_limit(zone)


def _register(port: int) -> tuple[str, str]:
    from bench import loadgen

    workspace_id, token = loadgen.register_workspace(port)
    return str(workspace_id), token


def bench_slow_clients(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    from devtools.processes import ServiceStack
    from devtools.processes.nginx import NginxProxy, nginx_binary
    from devtools.processes.slow_clients import upload_file

    slow = SCALES[scale.name]
    db.fresh()
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-slow."))
    # No worker count: gunicorn.conf.py decides, as in production.
    stack = ServiceStack(
        database_url=db.url, metrics_dir=scratch / "metrics", web_workers=None, log_dir=scratch
    )
    stack.start(web=True, qcluster=False)
    figures: dict[str, Any] = {"scale": asdict(slow)}
    try:
        poller, uploader = _register(stack.port), _register(stack.port)
        figures["gunicorn"] = _run(
            finish_spread=slow.finish_spread_seconds,
            port=stack.port,
            cert=None,
            uploads=slow.direct_uploads,
            slow=slow,
            poller=poller,
            uploader=uploader,
        )
        logger.info("slow clients, gunicorn alone: %s", figures["gunicorn"])
        if nginx_binary() is None:
            skipped = {"skipped": "nginx is not installed (apt-get install nginx)"}
            figures["nginx"] = figures["nginx_readers"] = skipped
        else:
            with NginxProxy(f"127.0.0.1:{stack.port}", root=scratch / "nginx") as proxy:
                # Bodies completing spread out (the figure), then all within one stagger.
                for key, spread in (("nginx", slow.finish_spread_seconds), ("nginx_burst", 0.0)):
                    figures[key] = _run(
                        finish_spread=spread,
                        port=proxy.tls_port,
                        cert=str(proxy.cert),
                        uploads=slow.nginx_uploads,
                        slow=slow,
                        poller=poller,
                        uploader=uploader,
                    )
                    logger.info("slow clients, through nginx (%s): %s", key, figures[key])
                # Downloads read slowly: nginx buffers each whole answer, so no gunicorn
                # thread waits on a reader.
                figures["nginx_readers"] = _run(
                    finish_spread=0.0,
                    port=proxy.tls_port,
                    cert=str(proxy.cert),
                    uploads=0,
                    slow=slow,
                    poller=poller,
                    uploader=uploader,
                    drips=0,
                    readers=slow.slow_readers,
                    file_id=upload_file(
                        stack.port,
                        host="localhost",
                        workspace_id=uploader[0],
                        token=uploader[1],
                        size=slow.reader_file_bytes,
                    ),
                    proxy=proxy,
                )
                logger.info("slow readers, through nginx: %s", figures["nginx_readers"])
        figures["setup"] = {
            "gunicorn": _gunicorn_line(stack.log_text()),
            "poller": f"one new connection per poll, every {POLL_INTERVAL * 1000:.0f} ms",
            "clients": (
                "one asyncio loop in a child process; uploads are real multipart bodies, from"
                f" 127.0.0.2, .3, ... ({_conn_limit('molecule_upload_bodies')} per address,"
                " the shipped limit)"
            ),
            "readers": (
                f"{slow.slow_readers} downloads of one {slow.reader_file_bytes // MIB} MiB file,"
                " each reading 512 bytes every 2 s with a 4 KiB receive buffer, from 127.0.0.2,"
                f" .3, ... ({_conn_limit('molecule_downloads')} per address, the shipped limit)"
            ),
        }
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {"slow_clients": figures}


def _gunicorn_line(log: str) -> str:
    for line in log.splitlines():
        if "gthread:" in line:
            return line.split("[INFO] ", 1)[-1]
    return "unknown"
