"""Peak RSS of one gunicorn worker while it receives a large upload and then serves it back."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.config import Scale
from bench.database import BenchDatabases
from bench.stats import summary

logger = logging.getLogger("bench")
MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


class RssSampler(threading.Thread):
    """Reads VmRSS every 2 ms; VmHWM catches what falls between samples."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))
            time.sleep(0.002)


def one_rep(db: BenchDatabases, size: int, scratch: Path) -> dict[str, Any]:
    from devtools.processes import ServiceStack

    stack = ServiceStack(
        database_url=db.url, metrics_dir=scratch / "metrics", web_workers=1, log_dir=scratch
    )
    stack.start(web=True, qcluster=False)
    try:
        workspace_id, token = loadgen.register_workspace(stack.port, "bench-memory")
        auth = {"Authorization": f"Bearer {token}"}
        prefix = f"/workspaces/{workspace_id}"
        conn = loadgen.http_session(stack.port)()

        def upload(content: bytes) -> Any:
            body, content_type = loadgen.multipart("big.bin", content)
            headers = {**auth, "Content-Type": content_type}
            data = loadgen.http_call(
                conn, "POST", f"{prefix}/chat/uploads", body=body, headers=headers
            )
            return loadgen.file_ids(data)[0]

        def fetch(file_id: Any) -> bytes:
            return loadgen.http_call(
                conn, "GET", f"{prefix}/pending-uploads/{file_id}/content", headers=auth
            )

        # Warm the worker (imports, connection, caches) before taking the baseline.
        fetch(upload(b"warm-up" * 100))
        pid = stack.pids()["gunicorn_workers"][0]
        reset_peak(pid)
        rss_before = status_kib(pid, "VmRSS")
        content = (bytes(range(256)) * (size // 256 + 1))[:size]
        sampler = RssSampler(pid)
        sampler.start()
        file_id = upload(content)
        hwm_upload = status_kib(pid, "VmHWM")
        # Measured from the same baseline: what the allocator kept from the upload counts too.
        reset_peak(pid)
        rss_after_upload = status_kib(pid, "VmRSS")
        served = fetch(file_id)
        hwm_fetch = status_kib(pid, "VmHWM")
        sampler.stop.set()
        sampler.join()
        conn.close()
        if served != content:
            raise RuntimeError("the fetched file differs from the uploaded one")
    finally:
        stack.stop()
    peak_kib = max(hwm_upload, hwm_fetch, sampler.peak_kib)
    return {
        "rss_before_mib": rss_before / 1024,
        "peak_upload_growth_mib": (hwm_upload - rss_before) / 1024,
        "rss_after_upload_mib": rss_after_upload / 1024,
        "peak_fetch_growth_mib": (hwm_fetch - rss_before) / 1024,
        "peak_growth_mib": (peak_kib - rss_before) / 1024,
    }


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS: writing 5 to clear_refs (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def bench_memory(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    size = scale.memory_file_bytes
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-mem."))
    reps = []
    try:
        for _ in range(scale.memory_reps):
            # A fresh worker each time: a reused one keeps what its allocator held on to.
            reps.append(one_rep(db, size, scratch))
            logger.info("memory: %s", reps[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    growth = summary([rep["peak_growth_mib"] for rep in reps], 1)
    return {
        "memory": {
            "file_mib": size / MIB,
            "web_workers": 1,
            "rss_before_mib": summary([rep["rss_before_mib"] for rep in reps], 1),
            "peak_upload_growth_mib": summary([rep["peak_upload_growth_mib"] for rep in reps], 1),
            "rss_after_upload_mib": summary([rep["rss_after_upload_mib"] for rep in reps], 1),
            "peak_fetch_growth_mib": summary([rep["peak_fetch_growth_mib"] for rep in reps], 1),
            "peak_growth_mib": growth,
            # Peak growth : file size (the target is <= 3).
            "growth_ratio": round(growth["median"] / (size / MIB), 2),
        }
    }
