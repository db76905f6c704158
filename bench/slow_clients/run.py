"""The slow-clients section: gunicorn alone, then through nginx (uploads, a burst, readers)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.config import Scale
from bench.database import BenchDatabases
from bench.slow_clients.phase import POLL_INTERVAL, conn_limit, run_phase
from bench.slow_clients.scale import MIB, SCALES

logger = logging.getLogger("bench")


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
        figures["gunicorn"] = run_phase(
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
                    figures[key] = run_phase(
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
                figures["nginx_readers"] = run_phase(
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
                f" 127.0.0.2, .3, ... ({conn_limit('molecule_upload_bodies')} per address,"
                " the shipped limit)"
            ),
            "readers": (
                f"{slow.slow_readers} downloads of one {slow.reader_file_bytes // MIB} MiB file,"
                " each reading 512 bytes every 2 s with a 4 KiB receive buffer, from 127.0.0.2,"
                f" .3, ... ({conn_limit('molecule_downloads')} per address, the shipped limit)"
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
