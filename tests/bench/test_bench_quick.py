"""Smoke test of the benchmark: ``python -m bench --quick`` completes and reports every figure.

Timings are never asserted: they belong to the benchmark, not to the suite.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import uuid
from typing import Any

import pytest
from django.db import connection

from bench.config import SECTIONS
from devtools.processes import database_url_from_settings
from tests.helpers import run_module

STAT = {"median", "min", "max", "runs"}
SWEEP = {
    "rows",
    "eligible_acked",
    "eligible_expired",
    "ours",
    "unbounded",
    "throughput_ratio",
}
SWEEP_VARIANT = {"rows_deleted", "seconds", "rows_per_s", "batches", "longest_statement_ms"}
API_ENDPOINT = {"api", "raw", "ratio"}
API_SIDE = {"rps", "p50_ms", "p99_ms", "requests", "errors"}
SLOW_RUN = {"uploads", "polls", "worst_poll_ms", "p99_poll_ms", "poll_errors", "uploads_ok"}
SLOW_READERS_RUN = SLOW_RUN | {"slow_readers", "readers_ok", "proxy_temp_peak_mib"}

EXPECTED_FIGURES: dict[str, set[str]] = {
    "upload_sweep": SWEEP,
    "toast_sweep": SWEEP | {"row_bytes", "batch_sizes"},
    "sweep_io": {"ours_first_batch", "unbounded"},
    "empty_sweep": {"rows", "runs", "ours_ms", "unbounded_ms", "plans", "index_scans_only"},
    "interference": {
        "sweep_rows_deleted",
        "sweep_seconds",
        "longest_statement_ms",
        "baseline_p50_ms",
        "baseline_p99_ms",
        "during_sweep_p50_ms",
        "during_sweep_p99_ms",
        "p99_ratio",
        "pooled",
        "smaller_batches",
    },
    "phantom_busy": {
        "workspaces",
        "activity_rows",
        "phantom_expected",
        "reset_rows",
        "same_rows_reset",
        "method",
        "ours_ms",
        "not_in_ms",
        "time_ratio",
        "plans",
    },
    "api": {"upload_1k", "upload_1m", "fetch_1m", "ack", "big_file", "setup"},
    "memory": {
        "file_mib",
        "web_workers",
        "rss_before_mib",
        "peak_upload_growth_mib",
        "peak_fetch_growth_mib",
        "peak_growth_mib",
        "growth_ratio",
        "curve",
        "before",
    },
    "slow_clients": {"scale", "gunicorn", "nginx", "nginx_readers", "setup"},
    "feed": {"quiet", "upload_in_flight", "setup"},
    "bucket_sweep": {
        "rows",
        "eligible_acked",
        "eligible_expired",
        "sql",
        "drain",
        "total",
        "unbounded_inline",
        "wal_bytes_per_row",
        "throughput_ratio",
        "sql_throughput_ratio",
        "statement_io",
    },
    "bucket_memory": {"file_mib", "peak_upload_growth_mib", "peak_fetch_growth_mib"},
    "throughput": {
        "head_poll",
        "page_poll",
        "ack",
        "activity_ack",
        "large_file",
        "setup",
        "workspaces_per_host",
    },
    "cpu": {
        "service",
        "whole_stack",
        "prototype",
        "floor",
        "same_answer",
        "requests",
        "large_file",
    },
}
FEED_PHASE = {
    "rows_committed",
    "rows_missed",
    "rows_delivered_twice",
    "visible_after_commit",
    "write",
    "poll",
    "oldest_write_transaction_ms",
}
THROUGHPUT_PATH = {"service", "floor", "ratio", "ratios"}
THROUGHPUT_SIDE = {"rps", "p50_ms", "p99_ms", "requests", "errors", "timeouts", "load_average"}
TARGET = {"target", "goal", "value", "compare", "bound", "requires", "met"}
EXPECTED_TARGETS = 22
# The sections build their own data, so `--only` runs of two halves of them report what one
# run of all does, and show that `--only` runs just what it names.
HALVES = (
    ("sweep", "toast", "empty", "feed", "bucket_sweep", "throughput"),
    ("interference", "phantom", "api", "memory", "slow", "bucket_memory", "cpu"),
)


# Like the browser, promtool and nginx tests: skipped with a reason where the tool is missing.
pytestmark = pytest.mark.skipif(
    not shutil.which("wrk"), reason="wrk is not installed (apt-get install wrk)"
)


def missing(data: dict[str, Any], keys: set[str]) -> set[str]:
    return keys - data.keys()


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One ``python -m bench --quick --only ...`` per half of the sections, one after the other."""
    assert sorted(section for half in HALVES for section in half) == sorted(SECTIONS)
    workdir = tmp_path_factory.mktemp("bench")
    env = {key: value for key, value in os.environ.items() if not key.startswith("COV_CORE_")}
    # The suite's own server; the bench makes throwaway databases of its own there.
    env["DATABASE_URL"] = database_url_from_settings(connection.settings_dict)
    db_name = f"molecule_bench_t{uuid.uuid4().hex[:8]}"

    def run(number: int) -> dict[str, Any]:
        output = workdir / f"quick-{number}.json"
        done = run_module(
            "bench",
            "--quick",
            "--only",
            *HALVES[number],
            # Distinct names: each run drops its own databases and templates.
            "--db-name",
            f"{db_name}_{number}",
            "--output",
            str(output),
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        return json.loads(output.read_text())

    # One half after the other: side by side, their servers' persistent connections and the
    # rest of the suite's ran out of PostgreSQL's 100.
    return [run(number) for number in range(len(HALVES))]


@pytest.fixture(scope="module")
def quick_results(quick_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs as one: the first's machine and scale, every run's figures and targets."""
    figures = {name: data for run in quick_runs for name, data in run["figures"].items()}
    assert len(figures) == sum(len(run["figures"]) for run in quick_runs), "a figure twice"
    targets = [target for run in quick_runs for target in run["targets"]]
    return {**quick_runs[0], "figures": figures, "targets": targets}


@pytest.mark.slow
def test_quick_run_reports_the_machine(quick_results: dict[str, Any]) -> None:
    machine = quick_results["machine"]
    assert not missing(machine, {"cpu_model", "cores", "postgresql", "python"})
    assert not missing(machine["postgresql"], {"server_version", "server"})
    assert quick_results["scale"]["name"] == "quick"


@pytest.mark.slow
def test_each_quick_run_ran_just_its_sections(quick_runs: list[dict[str, Any]]) -> None:
    for run, sections in zip(quick_runs, HALVES, strict=True):
        assert run["scale"]["name"] == "quick"
        assert list(run["section_seconds"]) == list(sections)


@pytest.mark.slow
@pytest.mark.parametrize("figure", sorted(EXPECTED_FIGURES))
def test_quick_run_reports_every_figure(quick_results: dict[str, Any], figure: str) -> None:
    data = quick_results["figures"][figure]
    assert not missing(data, EXPECTED_FIGURES[figure])
    if figure in ("upload_sweep", "toast_sweep"):
        for variant in ("ours", "unbounded"):
            assert not missing(data[variant], SWEEP_VARIANT)
            assert not missing(data[variant]["seconds"], STAT)
    if figure == "api":
        for endpoint in ("upload_1k", "upload_1m", "fetch_1m", "ack"):
            assert not missing(data[endpoint], API_ENDPOINT)
            for side in ("api", "raw"):
                assert not missing(data[endpoint][side], API_SIDE)
        for operation in ("upload", "fetch"):
            assert not missing(data["big_file"][operation], {"api_mib_s", "raw_mib_s", "ratio"})
    if figure == "memory":
        assert len(data["curve"]) >= 2
    if figure == "feed":
        for phase in ("quiet", "upload_in_flight"):
            assert not missing(data[phase], FEED_PHASE)
            assert data[phase]["rows_missed"] == data[phase]["rows_delivered_twice"] == 0
        assert data["upload_in_flight"]["uploads"] >= 1
    if figure == "bucket_sweep":
        assert data["drain"]["objects_left"] == 0
        assert data["drain"]["objects_deleted"] == data["sql"]["rows_deleted"] > 0
    if figure == "slow_clients":
        for run in (data["gunicorn"], data["nginx"]):
            if "skipped" not in run:
                assert not missing(run, SLOW_RUN)
                assert run["uploads_ok"] == run["uploads"]
        readers = data["nginx_readers"]
        if "skipped" not in readers:
            assert not missing(readers, SLOW_READERS_RUN)
            assert readers["readers_ok"] == readers["slow_readers"]


@pytest.mark.slow
def test_quick_run_draws_a_three_point_sweep_curve(quick_results: dict[str, Any]) -> None:
    curve = quick_results["figures"]["sweep_curve"]
    assert len(curve) >= 3
    for point in curve:
        assert not missing(point, SWEEP)


@pytest.mark.slow
def test_quick_run_tries_other_batch_sizes(quick_results: dict[str, Any]) -> None:
    tried = quick_results["figures"]["sweep_batch_sizes"]
    assert len(tried) >= 2
    for point in tried:
        assert not missing(
            point, {"batch_size", "seconds", "rows_per_s", "batches", "longest_statement_ms"}
        )


@pytest.mark.slow
def test_quick_run_judges_every_target(quick_results: dict[str, Any]) -> None:
    found = quick_results["targets"]
    assert len(found) == EXPECTED_TARGETS
    for item in found:
        assert not missing(item, TARGET)
        # met says what the value says: present, on the right side of the bound, and every
        # correctness flag the target needs is true.
        holds = {"<=": operator.le, ">=": operator.ge}[item["compare"]]
        expected = (
            item["value"] is not None
            and holds(item["value"], item["bound"])
            and all(item["requires"].values())
        )
        assert item["met"] is expected, item


# --- the bench's own correctness: the variants it compares did the same work -----------------


@pytest.mark.slow
@pytest.mark.parametrize("figure", ["upload_sweep", "toast_sweep"])
def test_both_sweep_variants_deleted_the_same_rows(
    quick_results: dict[str, Any], figure: str
) -> None:
    points = [quick_results["figures"][figure]]
    if figure == "upload_sweep":
        points += quick_results["figures"]["sweep_curve"]
    for point in points:
        ours, unbounded = point["ours"], point["unbounded"]
        eligible = point["eligible_acked"] + point["eligible_expired"]
        assert ours["rows_deleted"] == unbounded["rows_deleted"] == eligible > 0, point["rows"]
        assert ours["rows_deleted_consistent"] and unbounded["rows_deleted_consistent"]
    if figure == "upload_sweep":
        # The per-row I/O divides by the rows each statement deleted: both must have counted.
        io = quick_results["figures"]["sweep_io"]
        eligible = points[0]["eligible_acked"] + points[0]["eligible_expired"]
        assert io["unbounded"]["rows_deleted"] == eligible
        assert 0 < io["ours_first_batch"]["rows_deleted"] <= eligible


@pytest.mark.slow
def test_the_acks_and_resets_the_bench_times_were_applied(quick_results: dict[str, Any]) -> None:
    figures = quick_results["figures"]
    interference = figures["interference"]
    assert interference["acks_not_applied"] == 0
    assert interference["smaller_batches"]["acks_not_applied"] == 0
    phantom = figures["phantom_busy"]
    assert phantom["same_rows_reset"]
    assert phantom["reset_rows"] == phantom["phantom_expected"] > 0
    for endpoint in ("upload_1k", "upload_1m", "fetch_1m", "ack"):
        for side in ("api", "raw"):
            assert figures["api"][endpoint][side]["errors"] == 0, (endpoint, side)


@pytest.mark.slow
def test_service_and_floor_did_the_same_work(quick_results: dict[str, Any]) -> None:
    throughput = quick_results["figures"]["throughput"]
    for path in ("head_poll", "page_poll", "ack", "activity_ack"):
        figure = throughput[path]
        assert not missing(figure, THROUGHPUT_PATH), path
        for side in ("service", "floor"):
            assert not missing(figure[side], THROUGHPUT_SIDE), (path, side)
            assert figure[side]["requests"] > 0 and figure[side]["errors"] == 0, (path, side)
    # The same bytes from the service, the floor and the prototype.
    assert throughput["head_poll"]["same_answer"] and throughput["head_poll"]["rows"] == 0
    assert throughput["page_poll"]["same_answer"] and throughput["page_poll"]["rows"] > 0
    assert throughput["head_poll"]["prototype"]["errors"] == 0
    for path in ("ack", "activity_ack"):
        expected = throughput[path]["expected"]
        assert throughput[path]["applied"] == {"service": expected, "floor": expected}, path
    assert throughput["large_file"]["bytes_intact"] == {"service": True, "floor": True}


@pytest.mark.slow
def test_the_cpu_variants_gave_the_same_answer(quick_results: dict[str, Any]) -> None:
    cpu = quick_results["figures"]["cpu"]
    assert cpu["same_answer"]
    for variant in ("service", "whole_stack", "floor"):
        for poll in ("head_poll", "page_poll"):
            assert cpu[variant][poll]["client_cpu_us"] > 0, (variant, poll)
    assert cpu["prototype"]["head_poll"]["client_cpu_us"] > 0
    for side in ("service", "floor"):
        for operation in ("upload", "fetch"):
            assert cpu["large_file"][side][operation]["client_cpu_us"] > 0, (side, operation)
