"""Check the Prometheus rules with promtool and the Grafana dashboard's metric names."""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import scrape

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = Path("deploy/prometheus/alerts.yml")
ALERTS_TEST = Path("deploy/prometheus/alerts_test.yml")
DASHBOARD = Path("deploy/grafana/molecule-uploads.json")


# Counted by the web process that did the work (prometheus_client multiprocess files): each
# target exports its own host's count, so these are summed across targets, never max()ed.
PER_HOST_METRICS = frozenset(
    {
        "molecule_chat_upload_forwards_total",
        "molecule_chat_upload_forward_duration_seconds_bucket",
        "molecule_quota_refusals_total",
        "molecule_db_client_timeouts_total",
    }
)
METRIC_NAME = re.compile(r"molecule_[a-z_]+")


@pytest.fixture
def exported(db: None) -> frozenset[str]:
    """Every molecule_ sample name a scrape of /metrics shows, as dashboards and alerts see it.

    Every declared series is exported from the first scrape (at 0), so a name used in a rule or
    a panel and missing here is a typo or a metric that was renamed in code.
    """
    text = scrape(Client())
    names = {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("molecule_")
    }
    assert "molecule_pending_uploads_swept_total" in names, text
    return frozenset(names)


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        # CI installs promtool, so there a missing binary is a broken job,
        # not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail("promtool is not on PATH, but CI is set; CI must install it")
        pytest.skip("promtool is not on PATH (install the 'prometheus' package to run this)")
    return promtool


def _assert_promtool_passed(args: list[str], returncode: int, stdout: str, stderr: str) -> None:
    assert returncode == 0, (
        f"promtool {' '.join(args)} exited {returncode}\n"
        f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )


def test_promtool_accepts_the_rules() -> None:
    args = ["check", "rules", str(ALERTS)]
    result = subprocess.run(
        [_promtool(), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _assert_promtool_passed(args, result.returncode, result.stdout, result.stderr)


def alerts_test_parts(count: int) -> tuple[list[str], int]:
    """alerts_test.yml as ``count`` files that share its header and deal out its test groups.

    Returns the files' texts and the number of groups dealt.
    """
    text = (REPO_ROOT / ALERTS_TEST).read_text()
    head, key, body = text.partition("\ntests:\n")
    assert key, f"{ALERTS_TEST} has no top-level tests: list"
    # The comment lines before the first group, then one part per "- name:" item.
    preamble, *groups = re.split(r"(?m)^(?=  - name: )", body)
    assert groups and preamble.strip().startswith("#"), f"unexpected layout of {ALERTS_TEST}"
    # Dealt round-robin, so that no file gets a whole run of the long groups.
    parts = [head + key + preamble + "".join(groups[n::count]) for n in range(count)]
    return [part for part in parts if part != head + key + preamble], len(groups)


def test_promtool_passes_every_rule_unit_test(tmp_path: Path) -> None:
    # promtool evaluates one file's groups one after another on one core (about 30 s here),
    # and each group on its own: the groups are dealt out to files that run side by side.
    promtool = _promtool()
    shutil.copy(REPO_ROOT / ALERTS, tmp_path / ALERTS.name)
    parts, groups = alerts_test_parts(max(1, min(os.cpu_count() or 1, 4)))
    assert groups == (REPO_ROOT / ALERTS_TEST).read_text().count("\n  - name: ")
    running = []
    for number, part in enumerate(parts):
        path = tmp_path / f"alerts_test_{number}.yml"
        path.write_text(part)
        args = ["test", "rules", path.name]
        process = subprocess.Popen(
            [promtool, *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        running.append((args, process))
    for args, process in running:
        stdout, stderr = process.communicate(timeout=120)
        _assert_promtool_passed(args, process.returncode, stdout, stderr)


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


def test_dashboard_references_only_exported_metrics(exported: frozenset[str]) -> None:
    exprs = _dashboard_exprs()
    assert exprs, "the dashboard has no queries"
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "no dashboard query names a molecule_ metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


@pytest.mark.parametrize("rules", [ALERTS, ALERTS_TEST], ids=["rules", "rule tests"])
def test_alert_rules_reference_only_exported_metrics(exported: frozenset[str], rules: Path) -> None:
    # The rule tests' input series too: a test fed a name the service never exports proves
    # nothing about production.
    used = set(METRIC_NAME.findall((REPO_ROOT / rules).read_text()))
    assert used, f"{rules} names no molecule_ metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_every_alert_has_its_runbook_and_its_row_in_the_alert_list() -> None:
    rules = (REPO_ROOT / ALERTS).read_text()
    alerts = re.findall(r"(?m)^ +- alert: (\w+)$", rules)
    assert alerts, f"{ALERTS} has no alert"
    runbooks = re.findall(r"(?m)^ +runbook: (\S+)$", rules)
    assert runbooks == [f"docs/operations.md#runbook-{name.lower()}" for name in alerts]
    operations = (REPO_ROOT / "docs/operations.md").read_text()
    metrics = (REPO_ROOT / "docs/metrics.md").read_text()
    for name in alerts:
        assert f"\n### Runbook: {name}\n" in operations, name
        assert f"\n| [{name}](operations.md#runbook-{name.lower()}) |" in metrics, name


def test_dashboard_filters_every_query_by_job_and_instance() -> None:
    dashboard = json.loads((REPO_ROOT / DASHBOARD).read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] is True
    for expr in _dashboard_exprs():
        for selector in re.findall(r"molecule_[a-z_]+(\{[^}]*\})?", expr):
            assert 'job=~"$job"' in selector, expr
            assert 'instance=~"$instance"' in selector, expr


def test_stored_metrics_are_never_summed_across_targets() -> None:
    # Every target exports the same database total: a sum counts each sweep once per target.
    texts = [*_dashboard_exprs(), (REPO_ROOT / ALERTS).read_text()]
    summed = re.compile(r"sum(?: by \([a-z]+\))? ?\((?:increase|rate)\((molecule_[a-z_]+)")
    for text in texts:
        for name in summed.findall(text):
            assert name in PER_HOST_METRICS, text


def test_per_host_metrics_are_summed_across_targets() -> None:
    # Each target exports its own host's forwards: max() would show one host's share only.
    texts = [*_dashboard_exprs(), (REPO_ROOT / ALERTS).read_text()]
    aggregated = re.compile(
        r"(sum|max)(?: by \([a-z]+\))? ?\((?:increase|rate)\((molecule_[a-z_]+)"
    )
    uses = [found for text in texts for found in aggregated.findall(text)]
    assert {name for _, name in uses} >= PER_HOST_METRICS
    for operation, name in uses:
        if name in PER_HOST_METRICS:
            assert operation == "sum", name


def test_time_since_last_sweep_says_never_instead_of_the_epoch() -> None:
    dashboard = json.loads((REPO_ROOT / DASHBOARD).read_text())
    panel = next(
        p for p in _panels(dashboard["panels"]) if p["title"] == "Time since last successful sweep"
    )
    assert panel["fieldConfig"]["defaults"]["noValue"] == "never swept"
    # A stored 0 (never swept) is dropped, so time() - 0 (about 1.8e9 s) cannot show.
    assert panel["targets"][0]["expr"].endswith("> 0)")
