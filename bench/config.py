"""The two scales the benchmark runs at: the issue's full figures and a seconds-long smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from pending_uploads.conf import DEFAULT_SWEEP_BATCH_BYTES, DEFAULT_SWEEP_BATCH_SIZE
from scheduler.conf import DEFAULT_PHANTOM_BUSY_STALE_AFTER

# Section names, in the order they run (--only picks a subset).
SECTIONS = (
    "sweep",
    "toast",
    "empty",
    "interference",
    "phantom",
    "api",
    "memory",
    "slow",
    "feed",
    "bucket_sweep",
    "bucket_memory",
    "throughput",
    "cpu",
)

# Long enough that no generated row crosses an eligibility boundary while the run lasts
# (the nearest rows sit 1 h past it and 6 h before it); the sweep's cost does not depend on it.
ACK_RETENTION = timedelta(hours=24)
# The service's own defaults, so the benchmark measures what production runs.
PHANTOM_STALE_AFTER = DEFAULT_PHANTOM_BUSY_STALE_AFTER
SWEEP_BATCH_SIZE = DEFAULT_SWEEP_BATCH_SIZE
SWEEP_BATCH_BYTES = DEFAULT_SWEEP_BATCH_BYTES


@dataclass(frozen=True)
class Scale:
    name: str
    # Upload sweep: table sizes for the curve (the largest is the headline figure), 10 % eligible.
    sweep_sizes: tuple[int, ...]
    sweep_reps: int
    # Other batch sizes to try ours with (rows per arm, so up to twice that per statement).
    batch_sizes: tuple[int, ...]
    toast_rows: int
    toast_bytes: int
    toast_batch_sizes: tuple[int, ...]
    empty_runs: int
    interference_reps: int
    # Acks issued per baseline run (no sweep); the run under the sweep lasts as long as the sweep.
    baseline_acks: int
    workspaces: int
    activity_rows: int
    phantom_reps: int
    # API: requests per repetition for each endpoint, and a time bound per repetition.
    api_requests: dict[str, int]
    api_reps: int
    api_seconds: float
    api_concurrency: int
    # Memory: the file sizes of the growth-vs-size curve (the largest is the headline figure).
    memory_sizes: tuple[int, ...]
    memory_reps: int
    # One large file through the API and through raw psycopg, sequentially, this many times.
    big_file_bytes: int
    big_file_reps: int
    # Feed visibility: the upload kept in flight, and how long each phase (without, with) lasts.
    feed_upload_bytes: int
    feed_seconds: float
    # Bucket sweep: at most this many of the eligible rows get a real object (bench/bucket.py).
    bucket_objects: int
    # Throughput, service against floor: seconds per wrk run, runs per side, the large file.
    throughput_seconds: float
    throughput_reps: int
    throughput_file_bytes: int
    throughput_file_reps: int
    # gunicorn threads per worker of each side (gunicorn.conf.py's 16 at full scale). The quick
    # run, a smoke test inside the suite, gives each side 4 per worker (wrk's other connections
    # wait in gunicorn's queue), so that its three sides' persistent database connections stay
    # well within a default PostgreSQL's 100 beside the rest of the suite.
    throughput_threads: int
    # CPU per poll, in process: requests per variant and poll.
    cpu_requests: int

    @property
    def main_rows(self) -> int:
        return max(self.sweep_sizes)


# Each knob's value at the full scale, then at the quick one.
_KNOBS = {
    "sweep_sizes": ((100_000, 300_000, 1_000_000), (2_000, 4_000, 8_000)),
    "sweep_reps": (3, 2),
    "batch_sizes": ((1000, 2500, 5000, 20_000), (100, 5000)),
    "toast_rows": (20_000, 200),
    "toast_bytes": (200 * 1024, 200 * 1024),
    "toast_batch_sizes": ((100, 250), (2, 5)),
    "empty_runs": (20, 20),
    "interference_reps": (3, 1),
    "baseline_acks": (3000, 200),
    "workspaces": (100_000, 2_000),
    "activity_rows": (5_000_000, 50_000),
    "phantom_reps": (5, 2),
    "api_requests": (
        {"upload_1k": 1500, "upload_1m": 150, "fetch_1m": 300, "ack": 1500},
        {"upload_1k": 40, "upload_1m": 8, "fetch_1m": 16, "ack": 40},
    ),
    "api_reps": (3, 1),
    "api_seconds": (30.0, 5.0),
    "api_concurrency": (4, 2),
    "memory_sizes": (
        tuple(mib * 1024 * 1024 for mib in (1, 10, 25, 99)),
        (1024 * 1024, 3 * 1024 * 1024),
    ),
    "memory_reps": (3, 1),
    "big_file_bytes": (99 * 1024 * 1024, 3 * 1024 * 1024),
    "big_file_reps": (5, 2),
    "feed_upload_bytes": (100_000_000, 8_000_000),
    "feed_seconds": (20.0, 3.0),
    "bucket_objects": (10_000, 100),
    "throughput_seconds": (8.0, 2.0),
    "throughput_reps": (3, 1),
    "throughput_file_bytes": (99 * 1024 * 1024, 3 * 1024 * 1024),
    "throughput_file_reps": (4, 1),
    "throughput_threads": (16, 4),
    "cpu_requests": (3000, 300),
}

FULL = Scale(name="full", **{knob: full for knob, (full, _) in _KNOBS.items()})
QUICK = Scale(name="quick", **{knob: quick for knob, (_, quick) in _KNOBS.items()})

# Between the two, for a first look at scale on a shared machine (--medium): the full scale's
# knobs with the middle table size of its curve, two repetitions and one memory run per size.
MEDIUM = replace(
    FULL,
    name="medium",
    sweep_sizes=(100_000, 300_000),
    sweep_reps=2,
    memory_sizes=FULL.memory_sizes[-1:],
    memory_reps=1,
)
