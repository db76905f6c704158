"""Check the Prometheus rules with promtool and the Grafana dashboard's metric names."""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = Path("deploy/prometheus/alerts.yml")
ALERTS_TEST = Path("deploy/prometheus/alerts_test.yml")
DASHBOARD = Path("deploy/grafana/molecule-uploads.json")

# Every metric the service exports that dashboards and alerts may use. A name
# outside this set is a typo or a metric that was renamed in code.
KNOWN_METRICS = frozenset(
    {
        "molecule_pending_uploads_swept_total",
        "molecule_pending_uploads_rows",
        "molecule_pending_uploads_oldest_unacked_age_seconds",
        "molecule_pending_uploads_last_sweep_timestamp_seconds",
        "molecule_pending_uploads_sweep_duration_seconds_bucket",
        "molecule_phantom_busy_resets_total",
        "molecule_phantom_busy_sweep_errors_total",
        "molecule_workspaces_active",
    }
)
METRIC_NAME = re.compile(r"molecule_[a-z_]+")


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        # CI installs promtool, so there a missing binary is a broken job,
        # not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail("promtool is not on PATH, but CI is set; CI must install it")
        pytest.skip("promtool is not on PATH (install the 'prometheus' package to run this)")
    return promtool


@pytest.mark.parametrize(
    "args",
    [("check", "rules", str(ALERTS)), ("test", "rules", str(ALERTS_TEST))],
    ids=["check-rules", "test-rules"],
)
def test_promtool_accepts_rules(args: tuple[str, ...]) -> None:
    result = subprocess.run(
        [_promtool(), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        # Collapsed rows keep their panels nested.
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((REPO_ROOT / DASHBOARD).read_text())
    return [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_dashboard_uses_the_prometheus_datasource_variable() -> None:
    dashboard = json.loads((REPO_ROOT / DASHBOARD).read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in _panels(dashboard["panels"]):
        if panel.get("targets"):
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_references_only_known_metrics() -> None:
    exprs = _dashboard_exprs()
    assert exprs, "the dashboard has no queries"
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "no dashboard query names a molecule_ metric"
    assert used <= KNOWN_METRICS, f"unknown metrics: {sorted(used - KNOWN_METRICS)}"


def test_alert_rules_reference_only_known_metrics() -> None:
    used = set(METRIC_NAME.findall((REPO_ROOT / ALERTS).read_text()))
    assert used <= KNOWN_METRICS, f"unknown metrics: {sorted(used - KNOWN_METRICS)}"
