"""Peak RSS of one gunicorn worker while it receives a large upload and then serves it back."""

from __future__ import annotations

import contextlib
import json
import logging
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
from devtools.processes import process_reset_peak, process_rss_bytes

logger = logging.getLogger("bench")
MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    found = process_rss_bytes(pid, field)
    if found is None:
        raise RuntimeError(f"no {field} for process {pid}")
    return found // 1024


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


def one_rep(
    db: BenchDatabases, size: int, scratch: Path, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One fresh worker's RSS growth for one upload of ``size`` bytes and its fetch."""
    from devtools.processes import ServiceStack

    stack = ServiceStack(
        database_url=db.url,
        metrics_dir=scratch / "metrics",
        web_workers=1,
        log_dir=scratch,
        extra_env=extra_env,
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
        process_reset_peak(pid)
        rss_before = status_kib(pid, "VmRSS")
        content = (bytes(range(256)) * (size // 256 + 1))[:size]
        sampler = RssSampler(pid)
        sampler.start()
        file_id = upload(content)
        hwm_upload = status_kib(pid, "VmHWM")
        # Measured from the same baseline: what the allocator kept from the upload counts too.
        process_reset_peak(pid)
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


def bench_memory(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-mem."))
    points = []
    try:
        for size in scale.memory_sizes:
            reps = []
            for _ in range(scale.memory_reps):
                # A fresh worker each time: a reused one keeps what its allocator held on to.
                reps.append(one_rep(db, size, scratch))
                logger.info("memory %d MiB: %s", size // MIB, reps[-1])
            points.append(size_point(size, reps))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    headline = points[-1]
    return {
        "memory": {
            **headline,
            "web_workers": 1,
            "curve": points,
            "before": load_before(),
        }
    }


def size_point(size: int, reps: list[dict[str, Any]]) -> dict[str, Any]:
    growth = summary([rep["peak_growth_mib"] for rep in reps], 1)
    return {
        "file_mib": size / MIB,
        "rss_before_mib": summary([rep["rss_before_mib"] for rep in reps], 1),
        "peak_upload_growth_mib": summary([rep["peak_upload_growth_mib"] for rep in reps], 1),
        "rss_after_upload_mib": summary([rep["rss_after_upload_mib"] for rep in reps], 1),
        "peak_fetch_growth_mib": summary([rep["peak_fetch_growth_mib"] for rep in reps], 1),
        "peak_growth_mib": growth,
        # Peak growth : file size (first bar <= 1x at 99 MiB; goal <= 16 MiB at every size).
        "growth_ratio": round(growth["median"] / (size / MIB), 2),
    }


# The run of `--only api memory` with the code before streaming (whole bytes in and out),
# kept so the chart can draw before against after; docs/benchmarks.md quotes it.
BEFORE_PATH = Path(__file__).resolve().parent / "results" / "before-streaming.json"


def load_before() -> list[dict[str, Any]] | None:
    try:
        return json.loads(BEFORE_PATH.read_text())["figures"]["memory"]["curve"]
    except (OSError, ValueError, KeyError):
        return None


def draw_memory_chart(figures: dict[str, Any], path: Path) -> str:
    """Peak RSS growth of one worker against the file size, before and after streaming."""
    memory = figures.get("memory")
    if not memory:
        return "no memory figures: no memory chart drawn"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no memory chart drawn"
    fig, axes = plt.subplots(figsize=(7, 4.8))
    series = [("before (whole bytes)", memory.get("before"), "s--")]
    series.append(("after (streamed in chunks)", memory["curve"], "o-"))
    for label, curve, style in series:
        if not curve:
            continue
        sizes = [point["file_mib"] for point in curve]
        growth = [point["peak_growth_mib"]["median"] for point in curve]
        axes.plot(sizes, growth, style, label=label)
    largest = max(point["file_mib"] for point in memory["curve"])
    axes.plot([0, largest], [0, largest], ":", color="grey", label="1x the file")
    axes.axhline(16, color="grey", linestyle="-.", linewidth=0.8, label="16 MiB goal")
    axes.set_xlabel("file size, MiB (one upload + its fetch)")
    axes.set_ylabel("peak RSS growth of one fresh worker, MiB (median)")
    axes.set_title("Worker memory vs file size")
    axes.grid(alpha=0.3)
    axes.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"memory chart written to {path}"
